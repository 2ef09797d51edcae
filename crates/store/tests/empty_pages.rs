//! An empty page of an existing conversation is an empty list; an unknown id, or another
//! tenant's, is NotFound. The backends check existence only when a page comes back empty (a
//! page with rows proves it), so the empty cases are the ones to pin. Both backends.

use confab_core::input::{NewConversation, NewMessage};
use confab_core::seek::SeqWindow;
use confab_core::{Role, Status};
use confab_store::{MessageQuery, Store, StoreError, StoreOptions};

#[path = "support/testdb.rs"]
mod testdb;
use testdb::TestDb;

#[tokio::test]
async fn empty_pages_and_missing_conversations() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::new(&dir.path().join("empty.db")).await;
    let store = Store::open(&db.url, StoreOptions::default()).await.unwrap();
    let t = store.ensure_tenant("acme").await.unwrap();
    let other = store.ensure_tenant("other").await.unwrap();
    let empty = store
        .create_conversation(&t, NewConversation::new(Status::Active), None)
        .await
        .unwrap()
        .conversation()
        .id;
    let mut c = NewConversation::new(Status::Active);
    c.messages = vec![NewMessage {
        role: Some(Role::System),
        content: "internal".into(),
        ..NewMessage::default()
    }];
    let system_only = store
        .create_conversation(&t, c, None)
        .await
        .unwrap()
        .conversation()
        .id;
    let shown = [Role::User, Role::Assistant];
    let window = || SeqWindow::new(None, 20);

    let all = MessageQuery::default();
    assert!(
        store
            .list_messages(&t, empty, &all)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.message_roles(&t, empty).await.unwrap().is_empty());
    assert!(
        store
            .messages_window(&t, empty, None, window(), &shown)
            .await
            .unwrap()
            .is_empty()
    );
    // Rows exist but none is shown: still an empty page, not a 404.
    assert!(
        store
            .messages_window(&t, system_only, None, window(), &shown)
            .await
            .unwrap()
            .is_empty()
    );
    let users = MessageQuery {
        roles: Some(vec![Role::User]),
        ..MessageQuery::default()
    };
    assert!(
        store
            .list_messages(&t, system_only, &users)
            .await
            .unwrap()
            .is_empty()
    );

    for (tenant, id) in [
        (&t, uuid::Uuid::now_v7()),
        (&other, empty),
        (&other, system_only),
    ] {
        let nf = |r: Result<usize, StoreError>| matches!(r, Err(StoreError::NotFound));
        assert!(nf(store
            .list_messages(tenant, id, &all)
            .await
            .map(|v| v.len())));
        assert!(nf(store.message_roles(tenant, id).await.map(|v| v.len())));
        assert!(nf(store
            .messages_window(tenant, id, None, window(), &shown)
            .await
            .map(|v| v.len())));
    }
    store.close().await;
}

/// A window asked for an agent's conversation answers only for that agent's: its rows, or an
/// empty page when none is shown; another agent's conversation, one without an agent, an
/// unknown id and another tenant's are NotFound, with rows or without.
#[tokio::test]
async fn a_window_of_an_agents_conversation() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::new(&dir.path().join("agent.db")).await;
    let store = Store::open(&db.url, StoreOptions::default()).await.unwrap();
    let t = store.ensure_tenant("acme").await.unwrap();
    let other = store.ensure_tenant("other").await.unwrap();
    let create = |agent: Option<&str>, roles: &[Role]| {
        let mut c = NewConversation::new(Status::Active);
        c.agent_id = agent.map(str::to_owned);
        c.messages = roles
            .iter()
            .map(|r| NewMessage {
                role: Some(*r),
                content: format!("{r:?}"),
                ..NewMessage::default()
            })
            .collect();
        c
    };
    let mut ids = Vec::new();
    for (agent, roles) in [
        (Some("ada"), &[Role::User, Role::Assistant][..]),
        (Some("ada"), &[Role::System][..]),
        (Some("bob"), &[Role::User][..]),
        (None, &[Role::User][..]),
    ] {
        let w = store
            .create_conversation(&t, create(agent, roles), None)
            .await
            .unwrap();
        ids.push(w.conversation().id);
    }
    let (talk, silent, bobs, nobodys) = (ids[0], ids[1], ids[2], ids[3]);
    let shown = [Role::User, Role::Assistant];
    let window = || SeqWindow::new(None, 20);
    let page = |tenant, id, agent| {
        let store = &store;
        async move {
            store
                .messages_window(tenant, id, agent, window(), &shown)
                .await
                .map(|v| v.len())
        }
    };
    assert_eq!(page(&t, talk, Some("ada")).await.unwrap(), 2);
    assert_eq!(page(&t, silent, Some("ada")).await.unwrap(), 0);
    assert_eq!(page(&t, bobs, None).await.unwrap(), 1);
    for (tenant, id, agent) in [
        (&t, bobs, Some("ada")),
        (&t, silent, Some("bob")),
        (&t, nobodys, Some("ada")),
        (&t, uuid::Uuid::now_v7(), Some("ada")),
        (&other, talk, Some("ada")),
        (&other, silent, Some("ada")),
    ] {
        assert!(
            matches!(page(tenant, id, agent).await, Err(StoreError::NotFound)),
            "{id} as {agent:?}'s"
        );
    }
    store.close().await;
}
