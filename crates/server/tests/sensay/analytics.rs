//! Conversation analytics across UTC day boundaries.

use serde_json::json;
use time::{Duration, OffsetDateTime};

use super::*;

#[tokio::test]
async fn analytics_across_day_boundaries() {
    let app = TestApp::spawn().await;
    let c = Client::new(&app, "acme").await;
    let now = OffsetDateTime::now_utc();
    let made = [
        (40, "telegram"),
        (29, "web"),
        (1, "telegram"),
        (0, "discord"),
    ];
    for (days, source) in made {
        c.conversation(
            REPLICA,
            Some(source),
            Some(now - Duration::days(days)),
            &["user", "assistant"],
        )
        .await;
    }
    c.conversation("someone-else", Some("web"), Some(now), &["user"])
        .await;
    let c2 = Client::new(&app, "other-tenant").await;
    c2.conversation(REPLICA, Some("web"), Some(now), &["user"])
        .await;

    let points = c
        .items(&format!(
            "/v1/replicas/{REPLICA}/analytics/conversations/historical"
        ))
        .await;
    assert_eq!(points.len(), 30);
    let dates: Vec<time::Date> = points
        .iter()
        .map(|p| {
            let s = p["date"].as_str().unwrap();
            time::Date::parse(
                s,
                &time::macros::format_description!("[year]-[month]-[day]"),
            )
            .unwrap_or_else(|_| panic!("date {s} is not YYYY-MM-DD"))
        })
        .collect();
    for w in dates.windows(2) {
        assert_eq!(w[1], w[0] + Duration::days(1), "consecutive ascending days");
    }
    // The last point is today in UTC (read again in case the test crossed midnight).
    let today = dates[29];
    assert!(today == now.date() || today == OffsetDateTime::now_utc().date());
    for (p, d) in points.iter().zip(&dates) {
        let want = made
            .iter()
            .filter(|(days, _)| (now - Duration::days(*days)).date() <= *d)
            .count();
        assert_eq!(p["cumulativeConversations"], want, "on {d}");
    }
    // 40 days ago is before the window yet counted; 29 days ago is its first day.
    assert_eq!(points[0]["cumulativeConversations"], 2);
    assert_eq!(points[29]["cumulativeConversations"], 4);

    let sources = c
        .items(&format!(
            "/v1/replicas/{REPLICA}/analytics/conversations/sources"
        ))
        .await;
    assert_eq!(
        sources,
        vec![
            json!({"source": "telegram", "conversations": 2}),
            json!({"source": "discord", "conversations": 1}),
            json!({"source": "web", "conversations": 1}),
        ]
    );
}

#[tokio::test]
async fn analytics_of_a_replica_without_conversations() {
    let app = TestApp::spawn().await;
    let c = Client::new(&app, "acme").await;
    let (id, _) = c.conversation(REPLICA, Some("web"), None, &["user"]).await;
    app.call(
        reqwest::Method::DELETE,
        &format!("/v1/conversations/{id}"),
        Some(&c.token),
        None,
    )
    .await
    .expect(204);
    let sources = c
        .items(&format!(
            "/v1/replicas/{REPLICA}/analytics/conversations/sources"
        ))
        .await;
    assert!(sources.is_empty());
    let points = c
        .items(&format!(
            "/v1/replicas/{REPLICA}/analytics/conversations/historical"
        ))
        .await;
    assert_eq!(points.len(), 30);
    assert!(points.iter().all(|p| p["cumulativeConversations"] == 0));
    assert!(
        c.items(&format!("/v1/replicas/{REPLICA}/conversations"))
            .await
            .is_empty()
    );
}
