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
            .messages_window(&t, empty, window(), &shown)
            .await
            .unwrap()
            .is_empty()
    );
    // Rows exist but none is shown: still an empty page, not a 404.
    assert!(
        store
            .messages_window(&t, system_only, window(), &shown)
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
            .messages_window(tenant, id, window(), &shown)
            .await
            .map(|v| v.len())));
    }
    store.close().await;
}
