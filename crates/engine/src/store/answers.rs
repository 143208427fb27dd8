//! What S3's answers mean and what requests carry, once for every store
//! that speaks S3: the native client (`store::s3`) and a client driven one
//! request at a time (`store::transport`, the JS `send()` store).

use std::path::Path;

use crate::error::{Error, S3Error};
use crate::hashing::parse_hash;
use crate::model::{Condition, FileStat};
use crate::store::ObjectInfo;

/// The object metadata key this engine keeps its content hash under (see
/// `hashing`): what verifies a download whose ETag is not an MD5, such as an
/// encrypted object's, or a multipart object's uploaded elsewhere. (The name
/// is from when it held the whole-object MD5; such values are still
/// understood.)
pub const HASH_META: &str = "s3ws-md5";

/// The content hash kept in an object's metadata, given how to look a
/// metadata key up.
pub fn stored_hash<'a>(meta: impl FnOnce(&str) -> Option<&'a str>) -> Option<String> {
    parse_hash(meta(HASH_META)?)
}

/// Whether the ETag of an object encrypted as the answer says (its
/// `x-amz-server-side-encryption` and SSE-C algorithm headers) is its MD5:
/// not with KMS keys (SSE-KMS, DSSE-KMS) or customer keys (SSE-C).
pub fn etag_is_md5(sse: Option<&str>, customer_key: Option<&str>) -> bool {
    customer_key.is_none() && !matches!(sse, Some("aws:kms" | "aws:kms:dsse"))
}

/// What a GET or HEAD answer says of the object.
pub fn object_info(
    etag: Option<&str>,
    stored_hash: Option<String>,
    sse: Option<&str>,
    customer_key: Option<&str>,
) -> ObjectInfo {
    ObjectInfo {
        etag: etag.map(unquote_etag),
        hash: stored_hash,
        etag_is_md5: etag_is_md5(sse, customer_key),
        version: None,
        size: None,
    }
}

/// Strips the quotes S3 puts around ETags.
pub fn unquote_etag(etag: &str) -> String {
    etag.trim_matches('"').to_owned()
}

/// An ETag as a condition header carries it.
pub fn quote_etag(etag: &str) -> String {
    format!("\"{etag}\"")
}

/// The `If-Match` header a condition sends, if any.
pub fn if_match(c: &Condition) -> Option<String> {
    match c {
        Condition::IfMatch(etag) => Some(quote_etag(etag)),
        _ => None,
    }
}

/// The `If-None-Match` header a condition sends, if any.
pub fn if_none_match(c: &Condition) -> Option<String> {
    (*c == Condition::IfNoneMatch).then(|| "*".to_owned())
}

/// Whether an error answer to a HEAD means "no such object".
pub fn is_not_found(code: &str, status: Option<u16>) -> bool {
    status == Some(404) || code == "NotFound" || code == "NoSuchKey"
}

/// An error answer as the engine reports it: `what` names the request
/// (operation, bucket, key and where it went), then S3's code and text,
/// then a hint for the usual mistakes. A failed condition (412) is
/// `Error::Conflict`, the one case callers handle for it.
pub fn answer_error(
    op: &str,
    key: &str,
    what: &str,
    code: String,
    status: Option<u16>,
    detail: &str,
    region: Option<&str>,
) -> S3Failure {
    let mut message = format!("{what} failed: {code}");
    if !detail.is_empty() {
        message = format!("{message}: {}", detail.trim_end_matches('.'));
    }
    if let Some(hint) = S3Error::hint(&code, detail, region) {
        message = format!("{message}. {hint}");
    }
    let conflict = status == Some(412) || code == "PreconditionFailed";
    S3Failure {
        error: S3Error::new(op, key, code, message).with_status(status),
        conflict,
    }
}

/// An error answer, before it becomes an `Error` (a store may attach the
/// error's source first).
pub struct S3Failure {
    /// The failure, as the engine reports it.
    pub error: S3Error,
    /// The answer was "precondition failed".
    pub conflict: bool,
}

impl From<S3Failure> for Error {
    fn from(f: S3Failure) -> Error {
        if f.conflict {
            Error::Conflict(f.error.message)
        } else {
            f.error.into()
        }
    }
}

/// A conditional write's or delete's outcome with "no such object" as the
/// failed condition it is: servers answer `If-Match` on a missing key with
/// 412, or (as AWS documents, and moto does) 404 `NoSuchKey`. Every store
/// reports it as `Error::Conflict`, so callers have one case to handle.
/// (A missing bucket or upload is no such thing.)
pub fn missing_is_conflict<T>(result: crate::Result<T>, conditional: bool) -> crate::Result<T> {
    match result {
        Err(e)
            if conditional
                && e.s3().is_some_and(|s| {
                    s.code == "NoSuchKey" || (s.status == Some(404) && s.code == "NotFound")
                }) =>
        {
            Err(Error::Conflict(e.to_string()))
        }
        other => other,
    }
}

/// The upload read other bytes than were hashed: the file changed under it.
pub fn changed_while_uploaded(path: &Path) -> Error {
    Error::Changed(format!("{} changed while it was uploaded", path.display()))
}

/// After an upload: fails unless the file is still the one scanned and
/// hashed (its stat unchanged), so bytes read mid-rewrite are never
/// recorded as synced.
pub fn check_unchanged(file: &std::fs::File, path: &Path, scanned: &FileStat) -> crate::Result<()> {
    match crate::local::Dir::file_stat(file) {
        Ok(now) if now == *scanned => Ok(()),
        _ => Err(changed_while_uploaded(path)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encryption_decides_whether_an_etag_is_an_md5() {
        assert!(etag_is_md5(None, None));
        assert!(etag_is_md5(Some("AES256"), None));
        assert!(!etag_is_md5(Some("aws:kms"), None));
        assert!(!etag_is_md5(Some("aws:kms:dsse"), None));
        assert!(!etag_is_md5(None, Some("AES256")));
    }

    #[test]
    fn a_failed_condition_is_a_conflict_and_other_answers_are_s3_errors() {
        let e: Error = answer_error(
            "PutObject",
            "k",
            "PutObject k",
            "PreconditionFailed".into(),
            Some(412),
            "",
            None,
        )
        .into();
        assert!(matches!(e, Error::Conflict(_)));
        let e: Error = answer_error(
            "GetObject",
            "k",
            "GetObject s3://b/k",
            "NoSuchBucket".into(),
            Some(404),
            "gone.",
            Some("eu-west-1"),
        )
        .into();
        let s3 = e.s3().expect("an S3 error");
        assert_eq!((s3.code.as_str(), s3.status), ("NoSuchBucket", Some(404)));
        assert!(s3.message.starts_with("GetObject s3://b/k failed: NoSuchBucket: gone. Check the bucket name, the region (eu-west-1)"), "{}", s3.message);
    }

    #[test]
    fn conditions_become_headers() {
        assert_eq!(
            if_match(&Condition::IfMatch("e".into())).as_deref(),
            Some("\"e\"")
        );
        assert_eq!(if_none_match(&Condition::IfNoneMatch).as_deref(), Some("*"));
        assert_eq!(
            (if_match(&Condition::None), if_none_match(&Condition::None)),
            (None, None)
        );
        assert_eq!(unquote_etag("\"e\""), "e");
    }
}
