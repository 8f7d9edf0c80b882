//! Path normalization before routing: the route table, the limits and the upstream all see one
//! form of the path, so `/%61dmin` or `/./admin` cannot slip past a route meant for `/admin`.
//!
//! Errors: 400 `bad_path` (the connection closes).

use crate::error::ErrorKind;
use crate::route::has_dot_segment;

use super::super::answer::Answer;
use super::super::chain::Cx;

pub fn run(cx: &mut Cx<'_>) -> Result<(), Answer> {
    let path = cx.kit.req.path.of(cx.kit.buf.data());
    if has_dot_segment(path) {
        return Err(Answer::kind(ErrorKind::BadPath));
    }
    Ok(())
}
