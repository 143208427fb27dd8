//! The options the JavaScript wrapper checked, converted once into the
//! engine's `Config` (the engine keeps its own invariants; the wrapper
//! validates types and ranges and words the errors for users).

use std::path::PathBuf;
use std::time::Duration;

use engine::store::s3::{ConditionalWrites, S3Settings};
use engine::{Config, ConflictPolicy};
use napi_derive::napi;

#[napi(string_enum)]
pub enum NativeConflictPolicy {
    #[napi(value = "keep-both")]
    KeepBoth,
    #[napi(value = "overwrite")]
    Overwrite,
}

#[napi(string_enum)]
pub enum NativeConditionalWrites {
    #[napi(value = "auto")]
    Auto,
    #[napi(value = "required")]
    Required,
    #[napi(value = "off")]
    Off,
}

#[napi(object)]
pub struct NativeOptions {
    pub bucket: String,
    pub prefix: String,
    pub workspace_dir: String,
    pub region: Option<String>,
    pub endpoint: Option<String>,
    pub force_path_style: Option<bool>,
    pub download_concurrency: Option<u32>,
    pub upload_concurrency: Option<u32>,
    pub ignore_patterns: Option<Vec<String>>,
    pub priority_prefix: Option<String>,
    pub stall_timeout_ms: Option<u32>,
    pub conflict_policy: Option<NativeConflictPolicy>,
    pub conditional_writes: Option<NativeConditionalWrites>,
    pub max_delete_percent: Option<u32>,
    pub lock_timeout_ms: Option<u32>,
    /// 0: never abort abandoned multipart uploads.
    pub abandoned_upload_age_ms: Option<f64>,
    pub state_dir: Option<String>,
}

impl TryFrom<NativeOptions> for Config {
    type Error = engine::Error;

    fn try_from(o: NativeOptions) -> engine::Result<Config> {
        let mut config = Config::new(&o.bucket, &o.prefix, PathBuf::from(o.workspace_dir));
        config.s3 = S3Settings {
            region: o.region,
            endpoint: o.endpoint,
            force_path_style: o.force_path_style,
            conditional_writes: match o.conditional_writes {
                None | Some(NativeConditionalWrites::Auto) => ConditionalWrites::Auto,
                Some(NativeConditionalWrites::Required) => ConditionalWrites::Required,
                Some(NativeConditionalWrites::Off) => ConditionalWrites::Off,
            },
            ..S3Settings::default()
        };
        if let Some(ms) = o.stall_timeout_ms {
            config.stall_timeout = Duration::from_millis(ms.into());
        }
        if let Some(n) = o.download_concurrency {
            config.download_concurrency = n as usize;
        }
        if let Some(n) = o.upload_concurrency {
            config.upload_concurrency = n as usize;
        }
        if let Some(p) = o.conflict_policy {
            config.conflict_policy = match p {
                NativeConflictPolicy::KeepBoth => ConflictPolicy::KeepBoth,
                NativeConflictPolicy::Overwrite => ConflictPolicy::Overwrite,
            };
        }
        if let Some(p) = o.max_delete_percent {
            config.max_delete_percent = u8::try_from(p).unwrap_or(u8::MAX);
        }
        if let Some(ms) = o.lock_timeout_ms {
            config.lock_timeout = Duration::from_millis(ms.into());
        }
        if let Some(ms) = o.abandoned_upload_age_ms {
            config.abandoned_upload_age = (ms > 0.0).then(|| Duration::from_millis(ms as u64));
        }
        config.state_dir = o.state_dir.map(PathBuf::from);
        config.ignore_patterns = o.ignore_patterns.unwrap_or_default();
        config.priority_prefix = o.priority_prefix;
        Ok(config)
    }
}

/// The option a `Config` field comes from, as the caller wrote it: what an
/// engine `InvalidOption` names.
pub fn option_name(field: &str) -> &str {
    match field {
        "workspace_dir" => "workspaceDir",
        "stall_timeout" => "stallTimeoutMs",
        "download_concurrency" => "downloadConcurrency",
        "upload_concurrency" => "uploadConcurrency",
        "max_delete_percent" => "maxDeletePercent",
        "ignore_patterns" => "ignorePatterns",
        "lock_timeout" => "lockTimeoutMs",
        "state_dir" => "stateDir",
        "priority_prefix" => "priorityPrefix",
        other => other,
    }
}
