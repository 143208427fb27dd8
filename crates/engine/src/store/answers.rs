//! What S3's answers mean and what requests carry, once for every store
//! that speaks S3: the native client (`store::s3`) and a client driven one
//! request at a time (`store::transport`, the JS `send()` store).

use std::collections::HashMap;
use std::path::Path;

use crate::error::{Error, S3Error};
use crate::hashing::{is_composite, parse_hash, PART_SIZE};
use crate::model::{Condition, FileStat};
use crate::store::{Content, ObjectInfo, PutRequest};

/// The object metadata key this engine keeps its content hash under (see
/// `hashing`): what verifies a download whose ETag is not an MD5, such as an
/// encrypted object's, or a multipart object's uploaded elsewhere. (The name
/// is from when it held the whole-object MD5; such values are still
/// understood.)
pub const HASH_META: &str = "s3ws-md5";

/// The metadata key an upload sent before its content hash was known (see
/// `PutRequest::hash`) keeps its part size under: parts of `PART_SIZE`
/// make the multipart ETag the content hash.
pub const PART_SIZE_META: &str = "s3ws-part-size";

/// The metadata key an unhashed upload keeps its token under (see
/// `Content::Unhashed`).
pub const UPLOAD_META: &str = "s3ws-upload";

/// The metadata key a write of a path its writer never synced a version of
/// (sent under `If-None-Match`) is marked with. A pull about to replace a
/// synced, unchanged file with such an object keeps the file as a conflict
/// copy first: the writer did not know the version synced here, so that version was either replaced
/// by a second writer creating the path at the same moment (which a server
/// that checks conditions before it stores lets through) or deleted and
/// made anew since.
pub const NEW_META: &str = "s3ws-new";

/// The content hash an object's metadata gives, given how to look a
/// metadata key up and the object's ETag (when that ETag is the MD5 form):
/// the hash kept under `HASH_META`, else the multipart ETag of an upload in
/// this engine's parts (`PART_SIZE_META`).
fn stored_hash<'a>(
    meta: impl Fn(&str) -> Option<&'a str>,
    md5_etag: Option<&str>,
) -> Option<String> {
    if let Some(hash) = meta(HASH_META) {
        return parse_hash(hash);
    }
    let ours = meta(PART_SIZE_META).and_then(|v| v.parse::<u64>().ok()) == Some(PART_SIZE);
    md5_etag
        .filter(|_| ours)
        .and_then(parse_hash)
        .filter(|h| is_composite(h))
}

/// The metadata a write keeps: the content hash when it is known before
/// the first byte is sent (`hash`), else the part size that makes the
/// multipart ETag that hash; an unhashed upload's token (see
/// `Content::Unhashed`), which the base's intent names it by; and
/// `NEW_META` on a write of a path new to its writer (`PutRequest::new`).
pub fn upload_metadata(req: &PutRequest<'_>, hash: Option<&str>) -> HashMap<String, String> {
    let (content, mut meta) = (req.content, HashMap::new());
    if req.new {
        meta.insert(NEW_META.to_owned(), "1".to_owned());
    }
    match hash {
        Some(hash) => meta.insert(HASH_META.to_owned(), hash.to_owned()),
        None => meta.insert(PART_SIZE_META.to_owned(), PART_SIZE.to_string()),
    };
    if let Content::Unhashed { token } = content {
        meta.insert(UPLOAD_META.to_owned(), token.to_owned());
    }
    meta
}

/// Whether the ETag of an object encrypted as the answer says (its
/// `x-amz-server-side-encryption` and SSE-C algorithm headers) is its MD5:
/// not with KMS keys (SSE-KMS, DSSE-KMS) or customer keys (SSE-C).
pub fn etag_is_md5(sse: Option<&str>, customer_key: Option<&str>) -> bool {
    customer_key.is_none() && !matches!(sse, Some("aws:kms" | "aws:kms:dsse"))
}

/// What a GET or HEAD answer says of the object, given how to look its
/// metadata up.
pub fn object_info<'a>(
    etag: Option<&str>,
    meta: impl Fn(&str) -> Option<&'a str>,
    sse: Option<&str>,
    customer_key: Option<&str>,
) -> ObjectInfo {
    let etag_is_md5 = etag_is_md5(sse, customer_key);
    ObjectInfo {
        etag: etag.map(unquote_etag),
        hash: stored_hash(&meta, etag.filter(|_| etag_is_md5)),
        token: meta(UPLOAD_META).map(str::to_owned),
        written_new: meta(NEW_META).is_some(),
        etag_is_md5,
        version: None,
        size: None,
    }
}

/// Strips the quotes S3 puts around ETags.
pub fn unquote_etag(etag: &str) -> String {
    etag.trim_matches('"').to_owned()
}

/// The ETag a write's answer body names, whatever its root element is
/// called (moto 5.2.1 answers CompleteMultipartUpload with a
/// `CompleteMultipartUploadResponse` root, which the SDK refuses to read).
pub fn etag_in_answer(body: &str) -> Option<String> {
    let start = body.find("<ETag>")? + "<ETag>".len();
    let end = start + body[start..].find("</ETag>")?;
    let etag = body[start..end]
        .replace("&quot;", "\"")
        .replace("&#34;", "\"");
    Some(unquote_etag(etag.trim())).filter(|e| !e.is_empty())
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
    fn an_answer_names_its_etag_whatever_its_root_element() {
        let moto = r#"<?xml version="1.0" encoding="utf-8"?>
<CompleteMultipartUploadResponse xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Location>l</Location><ETag>"3c74b969bdf74d8e5119031592328b6f-6"</ETag></CompleteMultipartUploadResponse>"#;
        assert_eq!(
            etag_in_answer(moto).as_deref(),
            Some("3c74b969bdf74d8e5119031592328b6f-6")
        );
        let escaped = "<CopyObjectResult><ETag>&quot;abc&quot;</ETag></CopyObjectResult>";
        assert_eq!(etag_in_answer(escaped).as_deref(), Some("abc"));
        for none in [
            "",
            "<Result/>",
            "<Result><ETag></ETag></Result>",
            "<ETag>cut",
        ] {
            assert_eq!(etag_in_answer(none), None, "{none}");
        }
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
