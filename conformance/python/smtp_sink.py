"""A tiny SMTP server for obol's e-mail tests: listens on 127.0.0.1:PORT and
writes each message it accepts as one JSON line to OUT (headers, the
envelope and every leaf MIME part), flushing after each.

    smtp_sink.py PORT OUT [--reject-rcpt ADDRESS]

--reject-rcpt answers 550 (a permanent refusal) for that recipient.
Prints "listening on 127.0.0.1:PORT" once it accepts connections.
"""

import argparse
import email
import email.policy
import json
import signal
import threading

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, out, reject_rcpt):
        self.out = out
        self.reject_rcpt = reject_rcpt
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.reject_rcpt and address.lower() == self.reject_rcpt.lower():
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        parts = [
            {"content_type": p.get_content_type(), "body": p.get_content()}
            for p in msg.walk()
            if not p.is_multipart()
        ]
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "from": str(msg["From"]),
            "to": str(msg["To"]),
            "subject": str(msg["Subject"]),
            "message_id": str(msg["Message-ID"]),
            "date": str(msg["Date"]),
            "content_type": msg.get_content_type(),
            "parts": parts,
        }
        with self.lock, open(self.out, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
        return "250 Message accepted for delivery"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("out")
    parser.add_argument("--reject-rcpt")
    args = parser.parse_args()
    controller = Controller(Sink(args.out, args.reject_rcpt), hostname="127.0.0.1", port=args.port)
    controller.start()
    print(f"listening on 127.0.0.1:{args.port}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
