//! One way to hold and call a JavaScript function from engine threads.

use napi::bindgen_prelude::*;
use napi::threadsafe_function::ThreadsafeFunction;

/// A JS function callable from any thread. Weak: a sync instance never
/// keeps the Node.js process alive. JS exceptions come back as errors.
pub type JsCallback<A, R> = ThreadsafeFunction<A, R, A, Status, false, true>;

pub fn js_callback<A, R>(f: &Function<'_, A, R>) -> Result<JsCallback<A, R>>
where
    A: 'static + JsValuesTupleIntoVec,
    R: 'static + FromNapiValue,
{
    f.build_threadsafe_function()
        .callee_handled::<false>()
        .weak::<true>()
        .build()
}

/// Calls a function that returns a Promise and waits for it to settle.
pub async fn call_and_await<A, R>(f: &JsCallback<A, Promise<R>>, args: A) -> Result<R>
where
    A: 'static + JsValuesTupleIntoVec,
    R: 'static + FromNapiValue,
{
    f.call_async_catch(args).await?.await
}
