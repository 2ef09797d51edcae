//! What the ranked-search tests share (search_kept.rs, search_tails.rs): the text they store,
//! the requests they make, and what of a page they compare.
#![allow(dead_code)]

use confab_core::cursor::SearchCursor;
use confab_core::input::{AppendMessages, NewConversation, NewMessage};
use confab_core::search::parse_query;
use confab_core::{Role, Status};
use confab_store::{
    SearchFilter, SearchPage, SearchRequest, SearchSort, Store, StoreOptions, TenantId,
};
use uuid::Uuid;

/// Text whose length and counts of the words vary with `i`, so scores differ.
pub fn text(i: usize) -> String {
    let mut w = vec!["alpha"; 1 + i % 3];
    if i.is_multiple_of(4) {
        w.push("beta");
    }
    if i.is_multiple_of(97) {
        w.push("gamma");
    }
    w.extend(std::iter::repeat_n("filler", i % 7));
    w.join(" ")
}

pub fn opts() -> StoreOptions {
    StoreOptions {
        // No merging and no stored windows built behind the test's back: the stores read the
        // index as the writes left it, and a test builds when it says so.
        search_merge_idle: None,
        ..StoreOptions::default()
    }
}

/// A store on `url` with [`opts`]: nothing built or merged behind the test's back.
pub async fn open(url: &str) -> Store {
    Store::open(url, opts()).await.unwrap()
}

pub fn request(q: &str, cursor: Option<SearchCursor>) -> SearchRequest {
    SearchRequest {
        query: parse_query(q).unwrap(),
        filter: SearchFilter::default(),
        sort: SearchSort::Relevance,
        limit: 40,
        cursor,
    }
}

/// What a page says: each hit's message, score and position, and the next cursor.
pub fn shown(p: &SearchPage) -> (Vec<(Uuid, String)>, Option<SearchCursor>) {
    let hits = p
        .hits
        .iter()
        .map(|h| (h.message_id, format!("{:.6}", h.score)))
        .collect();
    (hits, p.next_cursor)
}

/// The first page of a ranked search of `word` for `t`: each hit's message, snippet and score.
pub async fn first_snippets(store: &Store, t: &TenantId, word: &str) -> Vec<(Uuid, String, f64)> {
    let page = store.search(t, &request(word, None)).await.unwrap();
    page.hits
        .iter()
        .map(|h| (h.message_id, h.snippet.clone(), h.score))
        .collect()
}

pub fn messages(texts: impl IntoIterator<Item = String>) -> Vec<NewMessage> {
    texts
        .into_iter()
        .map(|content| NewMessage {
            role: Some(Role::User),
            content,
            ..NewMessage::default()
        })
        .collect()
}

pub async fn append(store: &Store, t: &TenantId, id: Uuid, texts: Vec<String>) {
    let input = AppendMessages {
        messages: messages(texts),
        status: None,
        metadata: None,
    };
    store.append_messages(t, id, input, None).await.unwrap();
}

/// A new conversation of `texts` (user messages); its id.
pub async fn conversation(store: &Store, t: &TenantId, texts: Vec<String>) -> Uuid {
    let mut conv = NewConversation::new(Status::Active);
    conv.messages = messages(texts);
    store
        .create_conversation(t, conv, None)
        .await
        .unwrap()
        .conversation()
        .id
}
