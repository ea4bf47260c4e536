"""One MCP session with obol, driven by the official Python SDK (`mcp` 2.x).

obol's integration tests (crates/obol/tests/it/mcp.rs) run this with a plan
on stdin and read the outcome on stdout, both JSON:

    {"transport": "stdio", "command": "/path/to/obol", "args": ["mcp"],
     "env": {"OBOL_MCP_TOKEN": "obol_ct_…", …}, "cwd": "…",
     "steps": [{"op": "list_tools"},
               {"op": "call", "name": "get_order", "arguments": {"order_id": "ord_…"}}]}

    {"transport": "http", "url": "http://127.0.0.1:8080/mcp", "token": "obol_sk_…", "steps": […]}

An http plan may add "headers" sent with every request of the session, such
as {"Obol-Organization": "org_…"} (over stdio, OBOL_MCP_ORGANIZATION in env).

The answer is {"server": {name, version}, "results": [one per step]}: for
`list_tools` the tools as the SDK parsed them (name, description,
inputSchema, annotations), for `call` {is_error, structured, text}, and for
a step the SDK refused {"protocol_error": "…"}. An `http` step
({method, url, token}) makes a plain request between two MCP steps and
answers its {status}.
"""

import asyncio
import json
import sys

import httpx2
from mcp import ClientSession, MCPError, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client


async def run_steps(session: ClientSession, steps: list) -> list:
    results = []
    for step in steps:
        try:
            if step["op"] == "list_tools":
                listed = await session.list_tools()
                results.append(
                    {"tools": [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in listed.tools]}
                )
            elif step["op"] == "call":
                answer = await session.call_tool(step["name"], step.get("arguments") or {})
                results.append(
                    {
                        "is_error": bool(answer.is_error),
                        "structured": answer.structured_content,
                        "text": [c.text for c in answer.content if getattr(c, "type", "") == "text"],
                    }
                )
            elif step["op"] == "http":
                # Something the host's backend does mid-session (revoking a token).
                async with httpx2.AsyncClient(timeout=30) as http:
                    r = await http.request(
                        step["method"], step["url"], headers={"Authorization": f"Bearer {step['token']}"}
                    )
                results.append({"status": r.status_code})
            else:
                raise ValueError(f"unknown step {step['op']!r}")
        except MCPError as e:
            error = getattr(e, "error", None)
            results.append(
                {
                    "protocol_error": str(e),
                    "code": getattr(error, "code", None),
                    "data": getattr(error, "data", None),
                }
            )
    return results


async def main() -> None:
    plan = json.load(sys.stdin)
    if plan["transport"] == "stdio":
        params = StdioServerParameters(
            command=plan["command"], args=plan.get("args", []), env=plan.get("env"), cwd=plan.get("cwd")
        )
        async with stdio_client(params) as (read, write):
            async with ClientSession(read, write) as session:
                init = await session.initialize()
                results = await run_steps(session, plan["steps"])
    else:
        headers = {"Authorization": f"Bearer {plan['token']}", **plan.get("headers", {})}
        async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
            async with streamable_http_client(plan["url"], http_client=http) as (read, write):
                async with ClientSession(read, write) as session:
                    init = await session.initialize()
                    results = await run_steps(session, plan["steps"])
    server = {"name": init.server_info.name, "version": init.server_info.version}
    json.dump({"server": server, "results": results}, sys.stdout)


if __name__ == "__main__":
    asyncio.run(main())
