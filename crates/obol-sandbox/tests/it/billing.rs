//! Products, prices, test clocks, subscriptions, invoices, balance
//! transactions and payouts.

use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn products_and_prices_with_inline_product_data() {
    let sb = spawn().await;
    let prod = sb
        .post("/v1/products", &[("name", "Membership")])
        .await
        .ok();
    let prod_id = prod["id"].as_str().unwrap();
    assert!(prod_id.starts_with("prod_"));
    let price = sb
        .post(
            "/v1/prices",
            &[
                ("currency", "eur"),
                ("unit_amount", "1500"),
                ("product", prod_id),
                ("recurring[interval]", "month"),
            ],
        )
        .await
        .ok();
    assert_eq!(price["type"], "recurring");
    assert_eq!(price["recurring"]["interval_count"], 1);
    assert_eq!(price["unit_amount_decimal"], "1500");
    let inline = sb
        .post(
            "/v1/prices",
            &[
                ("currency", "eur"),
                ("unit_amount", "700"),
                ("product_data[name]", "Gift"),
            ],
        )
        .await
        .ok();
    assert_eq!(inline["type"], "one_time");
    let gift = sb
        .get(&format!("/v1/products/{}", inline["product"].as_str().unwrap()))
        .await
        .ok();
    assert_eq!(gift["name"], "Gift");
    let list = sb
        .get(&format!("/v1/prices?product={prod_id}"))
        .await
        .ok();
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    let bad = sb
        .post(
            "/v1/prices",
            &[
                ("currency", "eur"),
                ("unit_amount", "700"),
                ("product", prod_id),
                ("recurring[interval]", "fortnight"),
            ],
        )
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.err()["param"], "recurring[interval]");
    let missing = sb
        .post("/v1/prices", &[("currency", "eur"), ("unit_amount", "700")])
        .await;
    assert_eq!(missing.err()["param"], "product");
    let _: Value = sb.get("/v1/products?active=true").await.ok();
}
