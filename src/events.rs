//! Engine progress and log records → one JS callback, queued without ever
//! blocking the engine.

use engine::{Level, Observer, Phase, Progress};
use napi::threadsafe_function::ThreadsafeFunctionCallMode;
use napi_derive::napi;

use crate::js_callback::JsCallback;

#[napi(string_enum = "lowercase")]
pub enum NativeEventKind {
    Progress,
    Log,
    /// The files under the priority prefix have settled.
    Priority,
}

#[napi(string_enum = "lowercase")]
pub enum NativePhase {
    Download,
    Upload,
    Cleanup,
}

#[napi(string_enum = "lowercase")]
pub enum NativeLevel {
    Debug,
    Info,
    Warn,
    Error,
}

/// A progress, log or priority record from the engine.
#[napi(object)]
pub struct NativeEvent {
    pub kind: NativeEventKind,
    pub phase: Option<NativePhase>,
    pub current: Option<u32>,
    pub total: Option<u32>,
    pub percentage: Option<u32>,
    pub current_file: Option<String>,
    /// Bytes moved in the phase so far, of `total_bytes`.
    pub bytes: Option<f64>,
    pub total_bytes: Option<f64>,
    pub level: Option<NativeLevel>,
    pub message: Option<String>,
}

impl NativeEvent {
    fn of(kind: NativeEventKind) -> Self {
        NativeEvent {
            kind,
            phase: None,
            current: None,
            total: None,
            percentage: None,
            current_file: None,
            bytes: None,
            total_bytes: None,
            level: None,
            message: None,
        }
    }
}

pub struct JsObserver(pub JsCallback<NativeEvent, ()>);

impl JsObserver {
    fn send(&self, event: NativeEvent) {
        self.0.call(event, ThreadsafeFunctionCallMode::NonBlocking);
    }
}

impl Observer for JsObserver {
    fn progress(&self, p: Progress) {
        self.send(NativeEvent {
            phase: Some(match p.phase {
                Phase::Download => NativePhase::Download,
                Phase::Upload => NativePhase::Upload,
                Phase::Cleanup => NativePhase::Cleanup,
            }),
            current: Some(p.current as u32),
            total: Some(p.total as u32),
            percentage: Some(p.percentage),
            current_file: p.current_file,
            bytes: Some(p.bytes as f64),
            total_bytes: Some(p.total_bytes as f64),
            ..NativeEvent::of(NativeEventKind::Progress)
        });
    }

    fn log(&self, level: Level, message: &str) {
        self.send(NativeEvent {
            level: Some(match level {
                Level::Debug => NativeLevel::Debug,
                Level::Info => NativeLevel::Info,
                Level::Warn => NativeLevel::Warn,
                Level::Error => NativeLevel::Error,
            }),
            message: Some(message.into()),
            ..NativeEvent::of(NativeEventKind::Log)
        });
    }

    fn priority_settled(&self) {
        self.send(NativeEvent::of(NativeEventKind::Priority));
    }
}
