//! Many appends in flight at once, as the batched write paths see them (SQLite's group-commit
//! writer; PostgreSQL's append batcher, which runs every waiting plain append in one
//! transaction): each lands exactly once with gapless seqs in every conversation, the row's
//! count matches, a missing or another tenant's conversation fails only its own request, the
//! appends that change status or carry metadata keep their single-path meaning, and every
//! append emits exactly one `conversation.updated` event showing the count it produced.
//! Runs on both backends.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use confab_core::input::{AppendMessages, NewConversation, NewMessage};
use confab_core::{Role, Status};
use confab_store::webhooks::{AttemptOutcome, EndpointChange, RetryPolicy};
use confab_store::{MessageQuery, Store, StoreError, StoreOptions};
use uuid::Uuid;

#[path = "support/testdb.rs"]
mod testdb;
use testdb::TestDb;

fn msg(role: Role, text: String) -> NewMessage {
    NewMessage {
        role: Some(role),
        content: text,
        ..NewMessage::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_land_once_in_order_and_emit_one_event_each() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::new(&dir.path().join("appends.db")).await;
    let store = Arc::new(Store::open(&db.url, StoreOptions::default()).await.unwrap());
    let a = store.ensure_tenant("acme").await.unwrap();
    let b = store.ensure_tenant("globex").await.unwrap();
    store
        .create_endpoint(
            &a,
            EndpointChange {
                url: Some("https://hooks.example/a".into()),
                event_types: Some(vec!["conversation.updated".into()]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut convs = Vec::new();
    for (tenant, n) in [(&a, 6), (&b, 3)] {
        for _ in 0..n {
            // No title yet: the first user message appended gives it.
            let c = store
                .create_conversation(tenant, NewConversation::new(Status::Active), None)
                .await
                .unwrap();
            convs.push((*tenant, c.conversation().id));
        }
    }

    let mut tasks = Vec::new();
    for i in 0..400usize {
        let store = store.clone();
        let (tenant, id) = convs[i % convs.len()];
        let (tenant, target, expect_ok) = match i % 10 {
            // No such conversation.
            3 => (tenant, Uuid::now_v7(), false),
            // Another tenant's conversation: the same answer.
            7 => (if tenant == a { b } else { a }, id, false),
            _ => (tenant, id, true),
        };
        tasks.push(tokio::spawn(async move {
            let mut input = AppendMessages {
                messages: vec![msg(Role::User, format!("w{i}"))],
                status: None,
                metadata: None,
            };
            if i % 10 == 5 {
                input.messages.push(msg(Role::Assistant, format!("w{i}b")));
                input.metadata = Some(
                    serde_json::json!({ format!("k{i}"): i })
                        .as_object()
                        .unwrap()
                        .clone(),
                );
            }
            if i % 50 == 9 {
                // Takes the single path on PostgreSQL (a status change has side effects).
                input.status = Some(Status::InProgress);
            }
            let r = store.append_messages(&tenant, target, input, None).await;
            match (&r, expect_ok) {
                (Ok(_), true) | (Err(StoreError::NotFound), false) => {}
                _ => panic!("append {i}: {r:?}"),
            }
            (i, id, expect_ok)
        }));
    }
    // The summary's counts are folded while the appends land (PostgreSQL; a no-op on SQLite):
    // a fold must never lose or double a delta committed beside it.
    let folding = {
        let store = store.clone();
        tokio::spawn(async move {
            for _ in 0..20 {
                store.compact_summary().await.unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let mut landed: BTreeMap<Uuid, BTreeSet<String>> = BTreeMap::new();
    for t in tasks {
        let (i, id, ok) = t.await.unwrap();
        if ok {
            let words = landed.entry(id).or_default();
            words.insert(format!("w{i}"));
            if i % 10 == 5 {
                words.insert(format!("w{i}b"));
            }
        }
    }

    let mut counts_a: BTreeMap<Uuid, usize> = BTreeMap::new();
    for (tenant, id) in &convs {
        let conv = store.get_conversation(tenant, *id).await.unwrap();
        let rows = store
            .list_messages(
                tenant,
                *id,
                &MessageQuery {
                    limit: Some(1000),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let want = &landed[id];
        assert_eq!(rows.len(), want.len(), "conversation {id}");
        assert_eq!(conv.message_count, rows.len() as i64);
        let seqs: Vec<i64> = rows.iter().map(|m| m.seq).collect();
        assert_eq!(seqs, (0..rows.len() as i64).collect::<Vec<_>>(), "gapless");
        let got: BTreeSet<String> = rows.iter().map(|m| m.content.clone()).collect();
        assert_eq!(&got, want, "each append once");
        // A two-message append keeps its messages adjacent and in order.
        for (k, m) in rows.iter().enumerate() {
            if let Some(first) = m.content.strip_suffix('b') {
                assert_eq!(rows[k - 1].content, first);
            }
        }
        assert_eq!(conv.title.as_deref(), Some(rows[0].content.as_str()));
        for m in rows.iter().filter(|m| m.content.ends_with('b')) {
            let i = &m.content[1..m.content.len() - 1];
            assert_eq!(
                conv.metadata[&format!("k{i}")],
                serde_json::json!(i.parse::<i64>().unwrap())
            );
        }
        if *tenant == a {
            counts_a.insert(*id, rows.len());
        }
    }

    folding.await.unwrap();
    for tenant in [a, b] {
        let mine: Vec<Uuid> = convs
            .iter()
            .filter(|(t, _)| *t == tenant)
            .map(|(_, id)| *id)
            .collect();
        let messages: usize = mine.iter().map(|id| landed[id].len()).sum();
        for fold in [false, true] {
            if fold {
                store.compact_summary().await.unwrap();
            }
            let s = store
                .summary(&tenant, confab_core::timefmt::now())
                .await
                .unwrap();
            assert_eq!(
                s.conversations,
                mine.len() as i64,
                "summary (folded: {fold})"
            );
            assert_eq!(s.messages, messages as i64, "summary (folded: {fold})");
        }
    }

    // Drain the outbox: one `conversation.updated` per append to tenant A, whose payload shows
    // the count that append produced, so the counts of one conversation's events are distinct.
    let mut seen: BTreeMap<Uuid, Vec<i64>> = BTreeMap::new();
    let policy = RetryPolicy {
        schedule: vec![Duration::from_secs(60)],
        disable_after: Duration::from_secs(3600),
    };
    loop {
        let claimed = store
            .claim_deliveries(100, Duration::from_secs(60))
            .await
            .unwrap();
        if claimed.is_empty() {
            break;
        }
        for d in claimed {
            assert_eq!(d.tenant, a, "tenant B has no endpoint");
            let body: serde_json::Value = serde_json::from_str(&d.payload).unwrap();
            if body["type"] == "conversation.updated" {
                let c = &body["data"]["conversation"];
                let id: Uuid = c["id"].as_str().unwrap().parse().unwrap();
                seen.entry(id)
                    .or_default()
                    .push(c["message_count"].as_i64().unwrap());
            }
            store
                .record_attempt(
                    &d,
                    AttemptOutcome {
                        status_code: Some(200),
                        latency_ms: 1,
                        response_snippet: None,
                        error: None,
                        success: true,
                    },
                    &policy,
                )
                .await
                .unwrap();
        }
    }
    for (id, n) in &counts_a {
        let mut got = seen.remove(id).unwrap_or_default();
        got.sort_unstable();
        got.dedup();
        let appends = landed[id].iter().filter(|w| !w.ends_with('b')).count();
        assert_eq!(got.len(), appends, "one event per append of {id}");
        assert_eq!(*got.last().unwrap(), *n as i64);
    }
    assert!(seen.is_empty());
    store.close().await;
}

/// Appends whose messages outnumber one insert statement's (PostgreSQL's batch then inserts in
/// chunks of 1,000 before writing the rows back): two of 1,200 messages and two small ones, sent
/// at once, each land whole, in order and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_beyond_one_insert_statement_land_whole() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::new(&dir.path().join("big.db")).await;
    let store = Arc::new(Store::open(&db.url, StoreOptions::default()).await.unwrap());
    let t = store.ensure_tenant("acme").await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..4 {
        let conv = NewConversation::new(Status::Active);
        ids.push(
            store
                .create_conversation(&t, conv, None)
                .await
                .unwrap()
                .conversation()
                .id,
        );
    }
    let sizes = [1200usize, 3, 1200, 5];
    let mut tasks = Vec::new();
    for (k, (&id, &n)) in ids.iter().zip(&sizes).enumerate() {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let messages = (0..n)
                .map(|i| msg(Role::User, format!("big{k}x{i} bulk")))
                .collect();
            let input = AppendMessages {
                messages,
                status: None,
                metadata: None,
            };
            store.append_messages(&t, id, input, None).await.unwrap();
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    for (k, (&id, &n)) in ids.iter().zip(&sizes).enumerate() {
        let conv = store.get_conversation(&t, id).await.unwrap();
        assert_eq!(conv.message_count, n as i64);
        let rows = store
            .list_messages(&t, id, &MessageQuery::default())
            .await
            .unwrap();
        let got: Vec<String> = rows.iter().map(|m| m.content.clone()).collect();
        let want: Vec<String> = (0..n).map(|i| format!("big{k}x{i} bulk")).collect();
        assert_eq!(got, want, "conversation {k}");
        let seqs: Vec<i64> = rows.iter().map(|m| m.seq).collect();
        assert_eq!(seqs, (0..n as i64).collect::<Vec<_>>());
    }
    store.close().await;
}

/// `Store::append_many` (the storage ceiling's append path, bench/src/ceiling.rs): every append
/// in order in one transaction, indexed for search, with the single path's counts and seqs; or,
/// when one conversation is missing (another tenant's included) or an input is invalid, none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_many_writes_every_append_in_order_or_none() {
    use confab_core::search::parse_query;
    use confab_store::{SearchFilter, SearchRequest, SearchSort, TenantId};

    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::new(&dir.path().join("many.db")).await;
    let store = Store::open(&db.url, StoreOptions::default()).await.unwrap();
    let a = store.ensure_tenant("acme").await.unwrap();
    let b = store.ensure_tenant("globex").await.unwrap();
    let mut first = NewConversation::new(Status::Active);
    first.messages = vec![msg(Role::User, "opening line".into())];
    let c1 = store
        .create_conversation(&a, first, None)
        .await
        .unwrap()
        .conversation()
        .id;
    let new = |t| {
        let store = &store;
        async move {
            store
                .create_conversation(t, NewConversation::new(Status::Active), None)
                .await
                .unwrap()
                .conversation()
                .id
        }
    };
    let c2 = new(&a).await;
    let theirs = new(&b).await;
    let one = |texts: &[&str]| AppendMessages {
        messages: texts
            .iter()
            .map(|t| msg(Role::User, (*t).to_owned()))
            .collect(),
        status: None,
        metadata: None,
    };
    let texts = |t: &TenantId, id| {
        let store = &store;
        let t = *t;
        async move {
            store
                .list_messages(&t, id, &MessageQuery::default())
                .await
                .unwrap()
                .into_iter()
                .map(|m| (m.seq, m.content))
                .collect::<Vec<_>>()
        }
    };
    let found = |word: &'static str| {
        let store = &store;
        async move {
            let req = SearchRequest {
                query: parse_query(word).unwrap(),
                filter: SearchFilter::default(),
                sort: SearchSort::Relevance,
                limit: 10,
                cursor: None,
            };
            store.search(&a, &req).await.unwrap().hits.len()
        }
    };

    assert!(store.append_many(&a, Vec::new()).await.unwrap().is_empty());
    let written = store
        .append_many(
            &a,
            vec![
                (c1, one(&["kiwi one"])),
                (c2, one(&["mango two"])),
                (c1, one(&["kiwi three", "kiwi four"])),
            ],
        )
        .await
        .unwrap();
    let counts: Vec<(Uuid, i64)> = written
        .iter()
        .map(|w| (w.conversation().id, w.conversation().message_count))
        .collect();
    assert_eq!(counts, vec![(c1, 2), (c2, 1), (c1, 4)]);
    assert_eq!(
        texts(&a, c1).await,
        vec![
            (0, "opening line".to_owned()),
            (1, "kiwi one".to_owned()),
            (2, "kiwi three".to_owned()),
            (3, "kiwi four".to_owned()),
        ]
    );
    assert_eq!(texts(&a, c2).await, vec![(0, "mango two".to_owned())]);
    assert_eq!(
        store.get_conversation(&a, c1).await.unwrap().message_count,
        4
    );
    assert_eq!(found("kiwi").await, 3);
    assert_eq!(found("mango").await, 1);

    // Another tenant's conversation is missing to this one: nothing of the batch is stored.
    for missing in [theirs, Uuid::now_v7()] {
        let r = store
            .append_many(
                &a,
                vec![
                    (c1, one(&["papaya lost"])),
                    (missing, one(&["papaya gone"])),
                ],
            )
            .await;
        assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    }
    // Invalid input names its place in the batch, and nothing is stored either.
    let mut status = one(&["papaya status"]);
    status.status = Some(Status::Completed);
    let r = store
        .append_many(&a, vec![(c2, one(&["papaya fine"])), (c2, status)])
        .await;
    match r {
        Err(StoreError::Invalid(e)) => assert!(e.to_string().contains("appends[1].status"), "{e}"),
        other => panic!("{other:?}"),
    }
    let r = store
        .append_many(&a, vec![(c2, one(&["papaya fine"])), (c2, one(&[]))])
        .await;
    match r {
        Err(StoreError::Invalid(e)) => {
            assert!(e.to_string().contains("appends[1].messages"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        store.get_conversation(&a, c1).await.unwrap().message_count,
        4
    );
    assert_eq!(
        store.get_conversation(&a, c2).await.unwrap().message_count,
        1
    );
    assert_eq!(
        store
            .get_conversation(&b, theirs)
            .await
            .unwrap()
            .message_count,
        0
    );
    assert_eq!(found("papaya").await, 0);
    store.close().await;
}
