//! The stages of the request path, one file each, all of the same shape: `run(&mut Cx) ->
//! Result<(), Answer>` (go on, or answered), except the terminal [`upstream`], whose "go on" is
//! the admitted request that [`super::forward`] sends. Their order is declared in
//! [`super::chain`].

pub mod access;
pub mod auth;
pub mod limits;
pub mod normalize;
pub mod respond;
pub mod route;
pub mod trace;
pub mod upstream;
