//! Path normalization before routing (RFC 3986 §6, see [`crate::http::normalize`]): the route
//! table, the limits, consistent hashing and (by default) the upstream all see one form of the
//! path, so `/%61dmin`, `//admin` or `/./admin` cannot slip past a route meant for `/admin`. A path
//! that is already normal costs one scan; a rewritten one goes to `kit.path` and
//! `ctx.path_rewritten` is set.
//!
//! Errors: 400 `bad_path` naming what was refused (dot segments, encoded separators, bad escapes,
//! NUL, ...); the connection closes.

use crate::error::ErrorKind;
use crate::http::normalize::{Normalized, normalize};

use super::super::answer::Answer;
use super::super::chain::Cx;

pub fn run(cx: &mut Cx<'_>) -> Result<(), Answer> {
    let opts = &cx.state.snap.config.http.normalize.options;
    let kit = &mut *cx.kit;
    let target = kit.req.path.of(kit.buf.data());
    match normalize(target, opts, &mut kit.path) {
        Ok(Normalized::Unchanged(_)) => Ok(()),
        Ok(Normalized::Rewritten) => {
            cx.ctx.path_rewritten = true;
            Ok(())
        }
        Err(e) => Err(Answer::kind(ErrorKind::BadPath(e))),
    }
}
