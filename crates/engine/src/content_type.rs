//! Content-Type of an uploaded file, from its name.

/// Chooses the Content-Type of each upload (the `contentTypeResolver`
/// option); without one, `guess_content_type` is used.
#[async_trait::async_trait]
pub trait ContentTypeResolver: Send + Sync {
    /// Content-Type for the workspace-relative path `rel`.
    async fn content_type(&self, rel: &str) -> String;
}

/// Upstream's table, matched first so every upstream answer stays the same.
const UPSTREAM: &[(&str, &str)] = &[
    ("txt", "text/plain"),
    ("md", "text/markdown"),
    ("csv", "text/csv"),
    ("html", "text/html"),
    ("css", "text/css"),
    ("xml", "application/xml"),
    ("js", "application/javascript"),
    ("mjs", "application/javascript"),
    ("cjs", "application/javascript"),
    ("jsx", "application/javascript"),
    ("ts", "application/typescript"),
    ("tsx", "application/typescript"),
    ("json", "application/json"),
    ("py", "text/x-python"),
    ("java", "text/x-java"),
    ("cpp", "text/x-c++src"),
    ("c", "text/x-c"),
    ("h", "text/x-c"),
    ("go", "text/x-go"),
    ("rs", "text/x-rust"),
    ("rb", "text/x-ruby"),
    ("sh", "application/x-sh"),
    ("sql", "application/sql"),
    ("yaml", "application/x-yaml"),
    ("yml", "application/x-yaml"),
    ("toml", "application/toml"),
    ("ini", "text/plain"),
    ("conf", "text/plain"),
    ("env", "text/plain"),
    ("pdf", "application/pdf"),
    ("doc", "application/msword"),
    (
        "docx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ),
    ("xls", "application/vnd.ms-excel"),
    (
        "xlsx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ),
    (
        "pptx",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ),
    ("jpg", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("png", "image/png"),
    ("gif", "image/gif"),
    ("svg", "image/svg+xml"),
    ("webp", "image/webp"),
    ("ico", "image/x-icon"),
    ("mp3", "audio/mpeg"),
    ("mp4", "video/mp4"),
    ("webm", "video/webm"),
    ("wav", "audio/wav"),
    ("zip", "application/zip"),
    ("tar", "application/x-tar"),
    ("gz", "application/gzip"),
    ("woff", "font/woff"),
    ("woff2", "font/woff2"),
    ("ttf", "font/ttf"),
    ("otf", "font/otf"),
];

/// Beyond upstream's table: extensions whose database answer is wrong or
/// surprising for a workspace (`.mts` is TypeScript here, not an MPEG
/// transport stream), reviewed by hand.
const EXTRA: &[(&str, &str)] = &[
    ("mts", "application/typescript"),
    ("cts", "application/typescript"),
    ("htm", "text/html"),
    ("markdown", "text/markdown"),
    ("jsonl", "application/jsonl"),
    ("ndjson", "application/x-ndjson"),
    ("log", "text/plain"),
    ("tsv", "text/tab-separated-values"),
    ("ipynb", "application/x-ipynb+json"),
    ("wasm", "application/wasm"),
];

/// `application/*` types of the `mime_guess` database that are mainstream
/// enough to trust; any other `application/*` answer, and odd top-level
/// types (`chemical/`, `x-conference/`, …), fall back to octet-stream.
const MAINSTREAM_APPLICATION: &[&str] = &[
    "application/epub+zip",
    "application/gzip",
    "application/json",
    "application/ld+json",
    "application/msword",
    "application/ogg",
    "application/pdf",
    "application/rtf",
    "application/vnd.ms-excel",
    "application/vnd.ms-powerpoint",
    "application/vnd.oasis.opendocument.presentation",
    "application/vnd.oasis.opendocument.spreadsheet",
    "application/vnd.oasis.opendocument.text",
    "application/x-7z-compressed",
    "application/x-bzip2",
    "application/x-rar-compressed",
    "application/x-tar",
    "application/x-xz",
    "application/xml",
    "application/zip",
];

/// Database answers that are wrong for a workspace file.
const DISTRUSTED: &[&str] = &["video/vnd.dlna.mpeg-tts"];

/// Whether a `mime_guess` answer is one a user would agree with.
fn mainstream(mime: &str) -> bool {
    let top = mime.split('/').next().unwrap_or("");
    !DISTRUSTED.contains(&mime)
        && (matches!(top, "text" | "image" | "audio" | "video" | "font")
            || MAINSTREAM_APPLICATION.contains(&mime))
}

const FALLBACK: &str = "application/octet-stream";

/// Guesses the Content-Type of `filename` (a name or a path) from its
/// extension, case-insensitively. Text types carry `; charset=utf-8`.
pub fn guess_content_type(filename: &str) -> String {
    let name = filename.rsplit(['/', '\\']).next().unwrap_or(filename);
    // `.env` is a dotfile whose name is its extension, as in upstream.
    let Some((_, ext)) = name.rsplit_once('.') else {
        return FALLBACK.to_owned();
    };
    if ext.is_empty() {
        return FALLBACK.to_owned();
    }
    let ext = ext.to_ascii_lowercase();
    let mime = UPSTREAM
        .iter()
        .chain(EXTRA)
        .find(|(e, _)| *e == ext)
        .map(|(_, m)| (*m).to_owned())
        .or_else(|| {
            mime_guess::from_ext(&ext)
                .first()
                .map(|m| m.to_string())
                .filter(|m| mainstream(m))
        });
    match mime {
        Some(m) if is_text(&m) => format!("{m}; charset=utf-8"),
        Some(m) => m,
        None => FALLBACK.to_owned(),
    }
}

fn is_text(mime: &str) -> bool {
    mime.starts_with("text/")
        || matches!(
            mime,
            "application/xml"
                | "application/javascript"
                | "application/typescript"
                | "application/json"
                | "application/x-sh"
                | "application/sql"
                | "application/x-yaml"
                | "application/toml"
                | "application/jsonl"
                | "application/x-ndjson"
                | "application/x-ipynb+json"
                | "application/ld+json"
        )
}

#[cfg(test)]
mod tests {
    use super::guess_content_type as g;

    #[test]
    fn upstream_answers_and_better_guesses() {
        assert_eq!(g("a.png"), "image/png");
        assert_eq!(g("dir/x.TS"), "application/typescript; charset=utf-8");
        assert_eq!(g(".env"), "text/plain; charset=utf-8");
        assert_eq!(g("README"), "application/octet-stream");
        assert_eq!(g("noext."), "application/octet-stream");
        assert_eq!(g("a.b.unknownext"), "application/octet-stream");
        assert_eq!(g("x.avif"), "image/avif");
        // Upstream's own test; the database would say chemical/x-xyz.
        assert_eq!(g("file.xyz"), "application/octet-stream");
        assert_eq!(g("a.mts"), "application/typescript; charset=utf-8");
        assert_eq!(g("a.cts"), "application/typescript; charset=utf-8");
        assert_eq!(g("movie.mov"), "video/quicktime");
        assert_eq!(g("book.epub"), "application/epub+zip");
        assert_eq!(g("x.ics"), "text/calendar; charset=utf-8");
    }
}
