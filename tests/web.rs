//! The web pages and the staff content endpoints, over a real socket.

mod common;

use common::*;

#[tokio::test]
async fn pages_and_content_endpoints() {
    let app = spawn().await;

    for (path, ty) in [
        ("/", "text/html"),
        ("/console", "text/html"),
        ("/supervisor", "text/html"),
        ("/widget.js", "text/javascript"),
        ("/widget.css", "text/css"),
        ("/static/staff.js", "text/javascript"),
    ] {
        let (status, headers, body) = request(app.port, "GET", path, None, None).await;
        assert_eq!(status, 200, "{path}");
        assert!(
            headers
                .to_ascii_lowercase()
                .contains(&format!("content-type: {ty}")),
            "{path}: {headers}"
        );
        assert!(!body.is_empty());
        if ty == "text/html" {
            assert!(
                headers.contains("default-src 'self'"),
                "{path} sends a CSP: {headers}"
            );
        }
    }
    let (_, _, demo) = request(app.port, "GET", "/", None, None).await;
    assert!(demo.contains(r#"<script src="/widget.js"></script>"#));

    // Staff only.
    for path in ["/api/content/canned", "/api/content/resources"] {
        let (status, _, _) = request(app.port, "GET", path, None, None).await;
        assert_eq!(status, 401, "{path}");
    }
    let kim = app.login("kim").await;
    let (status, canned) = app.get_json("/api/content/canned", &kim).await;
    assert_eq!(status, 200);
    assert!(!canned["canned"].as_array().unwrap().is_empty());
    let (status, res) = app.get_json("/api/content/resources", &kim).await;
    assert_eq!(status, 200);
    let res = res["resources"].as_array().unwrap();
    assert!(res.iter().any(|r| r["phone"] == "109"), "{res:?}");
    assert!(res.iter().all(|r| r["verified"] == true), "verified only");
    app.stop().await;
}
