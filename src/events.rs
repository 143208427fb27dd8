//! Engine progress and log records → one JS callback, queued without ever
//! blocking the engine.

use engine::{Level, Observer, Progress};
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;

/// A progress, log or priority record from the engine.
#[napi(object)]
#[derive(Default)]
pub struct NativeEvent {
    /// `progress`, `log` or `priority` (the priority files have settled).
    pub kind: String,
    pub phase: Option<String>,
    pub current: Option<u32>,
    pub total: Option<u32>,
    pub percentage: Option<u32>,
    pub current_file: Option<String>,
    /// `debug`, `info`, `warn` or `error`.
    pub level: Option<String>,
    pub message: Option<String>,
}

/// Weak: a sync instance must not keep the Node.js process alive.
pub type EventFn = ThreadsafeFunction<NativeEvent, (), NativeEvent, Status, false, true>;

pub struct JsObserver(pub EventFn);

impl JsObserver {
    fn send(&self, event: NativeEvent) {
        self.0.call(event, ThreadsafeFunctionCallMode::NonBlocking);
    }
}

impl Observer for JsObserver {
    fn progress(&self, p: Progress) {
        self.send(NativeEvent {
            kind: "progress".into(),
            phase: Some(p.phase.as_str().into()),
            current: Some(p.current as u32),
            total: Some(p.total as u32),
            percentage: Some(p.percentage),
            current_file: p.current_file,
            ..NativeEvent::default()
        });
    }

    fn log(&self, level: Level, message: &str) {
        let level = match level {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        };
        self.send(NativeEvent {
            kind: "log".into(),
            level: Some(level.into()),
            message: Some(message.into()),
            ..NativeEvent::default()
        });
    }

    fn priority_settled(&self) {
        self.send(NativeEvent {
            kind: "priority".into(),
            ..NativeEvent::default()
        });
    }
}
