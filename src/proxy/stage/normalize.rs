//! Path normalization before routing (RFC 3986 §6, see [`crate::http::normalize`]): the route
//! table, the limits, consistent hashing and (by default) the upstream all see one form of the
//! path, so `/%61dmin`, `//admin` or `/./admin` cannot slip past a route meant for `/admin`. A path
//! that is already normal costs one scan; a rewritten one goes to `kit.path` and
//! `ctx.path_rewritten` is set.
//!
//! An absolute-form target without a path becomes `/` here.
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
    if kit.req.path_needs_slash {
        // An absolute-form target with an empty path (`http://host` or `http://host?q`) asks
        // for `/` (RFC 9112 §3.2.2): routed and forwarded as such.
        kit.path.clear();
        kit.path.push(b'/');
        kit.path.extend_from_slice(target);
        cx.ctx.path_rewritten = true;
        return Ok(());
    }
    match normalize(target, opts, &mut kit.path) {
        Ok(Normalized::Unchanged(_)) => Ok(()),
        Ok(Normalized::Rewritten) => {
            cx.ctx.path_rewritten = true;
            Ok(())
        }
        Err(e) => Err(Answer::kind(ErrorKind::BadPath(e))),
    }
}
