//! HTTP/1.1 wire handling: parsing heads into offsets, body framing, and writing heads back out with
//! minimal rewriting. Nothing in here does I/O except the write helper in [`buf`].

pub mod buf;
pub mod chunked;
pub mod headers;
mod method;
pub mod normalize;
pub mod request;
pub mod respond;
pub mod response;
pub mod rewrite;
pub mod sse;
pub mod traceparent;

pub use method::Method;
pub use request::{Framing, HeadError, Limits, MAX_HEADERS_LIMIT, RequestHead, parse_request};
pub use response::{ResponseError, ResponseHead, parse_response};
