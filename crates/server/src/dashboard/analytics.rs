//! The analytics page: conversations per day (seed 004's 30-day cumulative line and daily
//! counts), conversations by source, sentiment distribution, task completion over time and top
//! topics, for the whole tenant or one agent. The numbers come from the same store aggregates
//! and core series as the API's analytics routes.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use confab_core::daily;
use confab_store::InsightsQuery;
use serde::Deserialize;
use time::Duration;

use super::charts;
use super::pages::{Nav, PageResult, render};
use super::session::Session;
use crate::AppState;

/// Days in the series (Sensay's historical analytics: 30, today included).
const DAYS: u16 = 30;

#[derive(Debug, Default, Deserialize)]
pub struct AnalyticsParams {
    #[serde(default)]
    agent: String,
}

/// One row of a data table beside a chart.
pub struct Point {
    label: String,
    value: String,
}

#[derive(Template)]
#[template(path = "analytics.html")]
struct AnalyticsPage {
    nav: Nav,
    agent: String,
    agents: Vec<String>,
    cumulative_svg: String,
    daily_svg: String,
    daily_table: Vec<Point>,
    sources_svg: String,
    sources_table: Vec<Point>,
    sentiment_svg: String,
    sentiment_table: Vec<Point>,
    completion_svg: String,
    completion_table: Vec<Point>,
    analysed: i64,
    topics: Vec<Point>,
}

fn sentiment_class(label: &str) -> &'static str {
    match label {
        "positive" => "bar pos",
        "negative" => "bar neg",
        "mixed" => "bar mixed",
        _ => "bar neutral",
    }
}

/// `GET /ui/analytics?agent=…`.
pub async fn page(
    State(st): State<AppState>,
    session: Session,
    Query(p): Query<AnalyticsParams>,
) -> PageResult {
    let tenant = session.principal.tenant;
    let agent = p.agent.trim().to_owned();
    let now = confab_core::timefmt::now();
    let (first, start, end) = daily::window(now, DAYS);
    let summary = st.store.summary(&tenant, now).await?;
    // (day, created that day) for every day of the window, and the count before it.
    let (before, per_day, sources): (i64, Vec<i64>, Vec<(String, i64)>) = if agent.is_empty() {
        let days = st.store.daily(&tenant, u32::from(DAYS), now).await?;
        let in_window: i64 = days.iter().map(|d| d.conversations).sum();
        let sources = summary
            .by_source
            .iter()
            .map(|g| {
                let k = g.key.clone().unwrap_or_else(|| "unknown".into());
                (k, g.conversations)
            })
            .collect();
        (
            (summary.conversations - in_window).max(0),
            days.iter().map(|d| d.conversations).collect(),
            sources,
        )
    } else {
        let c = st
            .store
            .agent_daily_counts(&tenant, &agent, start, end)
            .await?;
        let per_day = (0..i64::from(DAYS))
            .map(|d| {
                c.per_day
                    .iter()
                    .filter(|(day, _)| *day == d)
                    .map(|(_, n)| n)
                    .sum()
            })
            .collect();
        let sources = st.store.agent_sources(&tenant, &agent, "unknown").await?;
        (c.before, per_day, sources)
    };
    let labels: Vec<String> = (0..i64::from(DAYS))
        .map(|d| daily::ymd(first + Duration::days(d)))
        .collect();
    let per_day_as_pairs: Vec<(i64, i64)> = per_day
        .iter()
        .enumerate()
        .map(|(d, n)| (d as i64, *n))
        .collect();
    let cumulative: Vec<(String, i64)> = daily::cumulative(first, DAYS, before, &per_day_as_pairs)
        .into_iter()
        .map(|(d, n)| (daily::ymd(d), n))
        .collect();
    let daily_points: Vec<(String, i64)> = labels.iter().cloned().zip(per_day).collect();

    let insights = st
        .store
        .insights_summary(
            &tenant,
            &InsightsQuery {
                agent_id: (!agent.is_empty()).then(|| agent.clone()),
                ..InsightsQuery::default()
            },
        )
        .await?;
    let s = &insights.total.sentiment;
    let sentiment = vec![
        ("positive".to_owned(), s.positive),
        ("neutral".to_owned(), s.neutral),
        ("mixed".to_owned(), s.mixed),
        ("negative".to_owned(), s.negative),
    ];
    let completion: Vec<(String, Option<f64>)> = labels
        .iter()
        .map(|l| {
            let rate = insights
                .by_day
                .iter()
                .find(|(d, _)| d == l)
                .and_then(|(_, g)| g.completion_rate);
            (l.clone(), rate)
        })
        .collect();

    let who = if agent.is_empty() {
        "all agents".to_owned()
    } else {
        format!("agent {agent}")
    };
    let table = |rows: &[(String, i64)]| -> Vec<Point> {
        rows.iter()
            .map(|(l, v)| Point {
                label: l.clone(),
                value: v.to_string(),
            })
            .collect()
    };
    let view = AnalyticsPage {
        nav: Nav::signed_in(&session, "analytics"),
        cumulative_svg: charts::line(
            &format!("Conversations in all, at the end of each of the last 30 days ({who})"),
            &cumulative,
        ),
        daily_svg: charts::columns(
            &format!("Conversations created per day, last 30 days ({who})"),
            &daily_points,
        ),
        daily_table: cumulative
            .iter()
            .zip(&daily_points)
            .map(|((l, c), (_, d))| Point {
                label: l.clone(),
                value: format!("{d} new, {c} in all"),
            })
            .collect(),
        sources_svg: charts::bars(
            &format!("Conversations by source ({who})"),
            &sources,
            |_| "bar",
        ),
        sources_table: table(&sources),
        sentiment_svg: charts::bars(
            &format!("Sentiment of analysed conversations ({who})"),
            &sentiment,
            sentiment_class,
        ),
        sentiment_table: table(&sentiment),
        completion_svg: charts::rate(
            &format!("Task completion rate per day of creation, last 30 days ({who})"),
            &completion,
        ),
        completion_table: completion
            .iter()
            .filter_map(|(l, r)| {
                r.map(|r| Point {
                    label: l.clone(),
                    value: format!("{:.0}%", r * 100.0),
                })
            })
            .collect(),
        analysed: insights.total.conversations,
        topics: insights
            .top_topics
            .iter()
            .map(|t| Point {
                label: t.topic.clone(),
                value: t.count.to_string(),
            })
            .collect(),
        agents: summary
            .by_agent
            .iter()
            .filter_map(|g| g.key.clone())
            .collect(),
        agent,
    };
    Ok(render(StatusCode::OK, &view))
}
