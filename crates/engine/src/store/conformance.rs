//! One conformance suite for every `Store`: what the engine relies on a
//! store to do (listing order and pages, prefixes, ETags, conditional puts
//! and deletes answering `Error::Conflict`, missing objects). Run against the
//! in-memory store and the S3 store by `tests/store_conformance.rs`, and
//! against the JavaScript `send()` store through the binding (a Node test),
//! so the stores cannot drift apart. Returns the first broken rule.

use md5::{Digest, Md5};

use crate::error::Error;
use crate::model::Condition;
use crate::store::small::{get_bytes, put_bytes};
use crate::store::{list_all, Store};

/// Fails the suite with `$why` unless `$cond`.
macro_rules! check {
    ($cond:expr, $($why:tt)+) => {
        if !$cond {
            return Err(format!($($why)+));
        }
    };
}

/// Puts `body` at `key` under `condition`, from a real file as the engine does.
async fn put(
    store: &dyn Store,
    key: &str,
    body: &[u8],
    condition: Condition,
) -> Result<Option<String>, Error> {
    put_bytes(store, key, body, "text/plain", &condition).await
}

async fn get(store: &dyn Store, key: &str) -> Result<Vec<u8>, String> {
    match get_bytes(store, key, usize::MAX).await {
        Ok(Some(fetched)) => Ok(fetched.body.unwrap_or_default()),
        Ok(None) => Err(format!("{key}: no such object")),
        Err(e) => Err(e.to_string()),
    }
}

fn is_conflict<T>(r: &Result<T, Error>) -> bool {
    matches!(r, Err(Error::Conflict(_)))
}

/// Runs the suite on an empty prefix `p/` (and writes one key under `p10/`).
pub async fn run(store: &dyn Store) -> Result<(), String> {
    let md5 = |b: &[u8]| hex::encode(Md5::digest(b));
    let fail = |what: &str, e: Error| format!("{what}: {e}");
    check!(
        list_all(store, "p/")
            .await
            .map_err(|e| fail("list", e))?
            .is_empty(),
        "the prefix must start empty"
    );

    // Conditional creation and replacement.
    let first = put(store, "p/a.txt", b"one", Condition::IfNoneMatch)
        .await
        .map_err(|e| fail("a put with If-None-Match on a new key", e))?;
    check!(
        first.as_deref() == Some(md5(b"one").as_str()),
        "a single-part ETag is the MD5 (got {first:?})"
    );
    let again = put(store, "p/a.txt", b"two", Condition::IfNoneMatch).await;
    check!(
        is_conflict(&again),
        "If-None-Match on an existing key is a conflict (got {again:?})"
    );
    let stale = put(store, "p/a.txt", b"two", Condition::IfMatch("0".repeat(32))).await;
    check!(
        is_conflict(&stale),
        "If-Match with another ETag is a conflict (got {stale:?})"
    );
    check!(
        get(store, "p/a.txt").await? == b"one",
        "a refused put changes nothing"
    );
    let second = put(
        store,
        "p/a.txt",
        b"two",
        Condition::IfMatch(first.clone().unwrap_or_default()),
    )
    .await
    .map_err(|e| fail("a put with If-Match on the current ETag", e))?;
    check!(
        get(store, "p/a.txt").await? == b"two",
        "the conditional put replaced the object"
    );
    let head = store.head("p/a.txt").await.map_err(|e| fail("head", e))?;
    let head = head.ok_or("head of an existing object says missing")?;
    check!(
        head.etag == second,
        "HEAD gives the put's ETag ({:?} vs {second:?})",
        head.etag
    );
    check!(
        head.content_hash().as_deref() == Some(md5(b"two").as_str()),
        "HEAD gives the content's MD5"
    );
    check!(
        store
            .head("p/missing")
            .await
            .map_err(|e| fail("head of a missing key", e))?
            .is_none(),
        "HEAD of a missing key is None"
    );

    // Listings: every key under the prefix (not a neighbouring prefix), in order.
    for i in 0..7 {
        put(store, &format!("p/d/{i}"), b"x", Condition::None)
            .await
            .map_err(|e| fail("an unconditional put", e))?;
    }
    put(store, "p10/neighbour", b"x", Condition::None)
        .await
        .map_err(|e| fail("an unconditional put", e))?;
    let listed = list_all(store, "p/").await.map_err(|e| fail("list", e))?;
    let keys: Vec<&str> = listed.iter().map(|o| o.key.as_str()).collect();
    let mut want = vec!["p/a.txt".to_owned()];
    want.extend((0..7).map(|i| format!("p/d/{i}")));
    check!(
        keys == want,
        "the listing is every key under the prefix, in order (got {keys:?})"
    );
    check!(listed[0].size == Some(3), "the listing gives sizes");
    check!(listed[0].etag == second, "the listing gives ETags");

    // Conditional deletes.
    let stale = store.delete("p/a.txt", Some(&"0".repeat(32))).await;
    check!(
        is_conflict(&stale),
        "a delete with another ETag is a conflict (got {stale:?})"
    );
    check!(
        store
            .head("p/a.txt")
            .await
            .map_err(|e| fail("head", e))?
            .is_some(),
        "a refused delete deletes nothing"
    );
    store
        .delete("p/a.txt", second.as_deref())
        .await
        .map_err(|e| fail("a delete with the current ETag", e))?;
    check!(
        store
            .head("p/a.txt")
            .await
            .map_err(|e| fail("head", e))?
            .is_none(),
        "the conditional delete deleted"
    );
    store
        .delete("p/never-there", None)
        .await
        .map_err(|e| fail("deleting a missing key succeeds", e))?;
    let gone = store.delete("p/never-there", Some(&"0".repeat(32))).await;
    check!(
        is_conflict(&gone),
        "a conditional delete of a missing key is a conflict (got {gone:?})"
    );

    // Batch deletes: each key under its own condition.
    let mut etags = Vec::new();
    for key in ["p/m1", "p/m2", "p/m3"] {
        let etag = put(store, key, key.as_bytes(), Condition::None)
            .await
            .map_err(|e| fail("an unconditional put", e))?;
        etags.push(etag);
    }
    let batch = [
        ("p/m1".to_owned(), etags[0].clone()),
        ("p/m2".to_owned(), Some("0".repeat(32))),
        ("p/m3".to_owned(), None),
        ("p/never-there".to_owned(), None),
    ];
    let results = store.delete_many(&batch).await;
    let outcome: Vec<(&str, &str)> = results
        .iter()
        .map(|(key, r)| {
            let what = match r {
                Ok(()) => "deleted",
                Err(Error::Conflict(_)) => "conflict",
                Err(_) => "error",
            };
            (key.as_str(), what)
        })
        .collect();
    check!(
        outcome
            == [
                ("p/m1", "deleted"),
                ("p/m2", "conflict"),
                ("p/m3", "deleted"),
                ("p/never-there", "deleted")
            ],
        "a batch delete answers per key (got {outcome:?})"
    );
    let left: Vec<String> = list_all(store, "p/m")
        .await
        .map_err(|e| fail("list", e))?
        .into_iter()
        .map(|o| o.key)
        .collect();
    check!(
        left == ["p/m2"],
        "a batch delete deletes exactly the keys whose conditions hold (left {left:?})"
    );
    Ok(())
}
