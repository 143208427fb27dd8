//! Engine progress and log records → one JS callback, queued without ever
//! blocking the engine.

use engine::{Level, Observer, Phase, Progress};
use napi::threadsafe_function::ThreadsafeFunctionCallMode;
use napi_derive::napi;

use crate::js_callback::JsCallback;

#[napi(string_enum = "lowercase")]
pub enum NativePhase {
    Download,
    Upload,
    Cleanup,
    Restore,
}

#[napi(string_enum = "lowercase")]
pub enum NativeLevel {
    Debug,
    Info,
    Warn,
    Error,
}

/// A progress, log or priority record from the engine (progress: files
/// finished of `total`, bytes moved of `total_bytes`).
#[napi(discriminant = "kind", discriminant_case = "lowercase")]
pub enum NativeEvent {
    Progress {
        phase: NativePhase,
        current: u32,
        total: u32,
        percentage: u32,
        current_file: Option<String>,
        bytes: f64,
        total_bytes: f64,
    },
    Log {
        level: NativeLevel,
        message: String,
    },
    /// The files under the priority prefix have settled.
    Priority,
}

pub struct JsObserver(pub JsCallback<NativeEvent, ()>);

impl JsObserver {
    fn send(&self, event: NativeEvent) {
        self.0.call(event, ThreadsafeFunctionCallMode::NonBlocking);
    }
}

impl Observer for JsObserver {
    fn progress(&self, p: Progress) {
        self.send(NativeEvent::Progress {
            phase: match p.phase {
                Phase::Download => NativePhase::Download,
                Phase::Upload => NativePhase::Upload,
                Phase::Cleanup => NativePhase::Cleanup,
                Phase::Restore => NativePhase::Restore,
            },
            current: p.current as u32,
            total: p.total as u32,
            percentage: p.percentage,
            current_file: p.current_file,
            bytes: p.bytes as f64,
            total_bytes: p.total_bytes as f64,
        });
    }

    fn log(&self, level: Level, message: &str) {
        self.send(NativeEvent::Log {
            level: match level {
                Level::Debug => NativeLevel::Debug,
                Level::Info => NativeLevel::Info,
                Level::Warn => NativeLevel::Warn,
                Level::Error => NativeLevel::Error,
            },
            message: message.into(),
        });
    }

    fn priority_settled(&self) {
        self.send(NativeEvent::Priority);
    }
}
