//! Route table, compiled once per config: validation compiles it (that is how it finds routes that
//! could never be used) and the validated config keeps it for every snapshot built from it.
//!
//! The table knows a route by its index and by what it matches ([`RouteMatch`]: the patterns below
//! and the methods), nothing of the config it came from; the config speaks this vocabulary and
//! turns a [`Conflict`] into its own error, naming the routes.
//!
//! Lookup order, most specific first: exact host, then wildcard hosts from the longest suffix to the
//! shortest (`*.b.example.com` before `*.example.com`), then routes without hosts. Within a host,
//! an exact path beats a prefix and a longer prefix beats a shorter one; among routes for the same
//! host and path, one listing the method beats one accepting every method. If a less specific host
//! has a route for the path, it serves requests the more specific host has no route for.
//!
//! Cost per request: one lower-casing of the host into a stack buffer, one hash lookup per host
//! candidate (exact, each parent suffix, any), and per host table one exact-path lookup plus one hash
//! lookup per distinct prefix length. No allocation, no scan of the route list.

use rustc_hash::FxHashMap;

use crate::http::Method;

/// A host pattern of a route, lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    Exact(String),
    /// `*.example.com` stored as `.example.com`.
    Suffix(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    Exact(String),
    Prefix(String),
}

impl PathMatch {
    pub fn as_str(&self) -> &str {
        match self {
            PathMatch::Exact(p) | PathMatch::Prefix(p) => p,
        }
    }
}

/// What one route matches: what the table is compiled from.
#[derive(Debug, Clone, Copy)]
pub struct RouteMatch<'a> {
    /// Empty = any host.
    pub hosts: &'a [HostPattern],
    pub path: &'a PathMatch,
    /// Empty = any method.
    pub methods: &'a [Method],
}

/// Route `route` would match exactly the same requests as the earlier route `other` (indices in
/// the order the routes were given), so one of them could never be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conflict {
    pub route: usize,
    pub other: usize,
}

/// Methods as a bit set; 0 = any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Methods(u16);

impl Methods {
    fn of(ms: &[Method]) -> Methods {
        Methods(ms.iter().fold(0, |acc, m| acc | bit(*m)))
    }

    fn allows(self, m: Method) -> bool {
        self.0 == 0 || self.0 & bit(m) != 0
    }

    fn overlaps(self, other: Methods) -> bool {
        self.0 == 0 || other.0 == 0 || self.0 & other.0 != 0
    }
}

fn bit(m: Method) -> u16 {
    1 << (m as u16)
}

#[derive(Debug, Clone, Copy)]
struct Candidate {
    route: u32,
    methods: Methods,
}

#[derive(Debug, Default)]
struct PathTable {
    exact: FxHashMap<Box<[u8]>, Vec<Candidate>>,
    prefix: FxHashMap<Box<[u8]>, Vec<Candidate>>,
    /// Distinct prefix lengths, longest first.
    prefix_lens: Vec<usize>,
}

/// Result of a lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// Route index, and how many bytes of the path the route matched.
    Found {
        route: usize,
        matched: usize,
    },
    /// Some route matches host and path, none the method.
    MethodNotAllowed,
    NotFound,
}

impl PathTable {
    fn insert(&mut self, path: &PathMatch, c: Candidate) -> Result<(), u32> {
        let (map, key) = match path {
            PathMatch::Exact(p) => (&mut self.exact, p),
            PathMatch::Prefix(p) => (&mut self.prefix, p),
        };
        let list = map.entry(key.as_bytes().into()).or_default();
        if let Some(other) = list
            .iter()
            .find(|o| o.methods.overlaps(c.methods) && (o.methods.0 != 0) == (c.methods.0 != 0))
        {
            return Err(other.route);
        }
        list.push(c);
        // Routes that list methods first: they are more specific than catch-all ones.
        list.sort_by_key(|c| (c.methods.0 == 0, c.route));
        if let PathMatch::Prefix(p) = path {
            if !self.prefix_lens.contains(&p.len()) {
                self.prefix_lens.push(p.len());
                self.prefix_lens.sort_unstable_by(|a, b| b.cmp(a));
            }
        }
        Ok(())
    }

    fn lookup(&self, path: &[u8], method: Method, denied: &mut bool) -> Option<(usize, usize)> {
        let pick = |list: &Vec<Candidate>, denied: &mut bool| {
            let hit = list.iter().find(|c| c.methods.allows(method));
            if hit.is_none() {
                *denied = true;
            }
            hit.map(|c| c.route as usize)
        };
        if let Some(list) = self.exact.get(path) {
            if let Some(r) = pick(list, denied) {
                return Some((r, path.len()));
            }
        }
        for &len in &self.prefix_lens {
            if len <= path.len() {
                if let Some(list) = self.prefix.get(&path[..len]) {
                    if let Some(r) = pick(list, denied) {
                        return Some((r, len));
                    }
                }
            }
        }
        None
    }
}

/// The compiled routes of one config.
#[derive(Debug, Default)]
pub struct RouteTable {
    exact_hosts: FxHashMap<Box<[u8]>, PathTable>,
    /// Keyed by `.example.com` for `*.example.com`.
    suffix_hosts: FxHashMap<Box<[u8]>, PathTable>,
    any_host: PathTable,
}

const MAX_HOST: usize = 255;

impl RouteTable {
    /// Compiles the routes, in order (a route's index is its position); two routes that would
    /// match exactly the same requests are an error.
    pub fn build<'a>(
        routes: impl IntoIterator<Item = RouteMatch<'a>>,
    ) -> Result<RouteTable, Conflict> {
        let mut t = RouteTable::default();
        for (i, r) in routes.into_iter().enumerate() {
            let c = Candidate {
                route: i as u32,
                methods: Methods::of(r.methods),
            };
            let conflict = |other: u32| Conflict {
                route: i,
                other: other as usize,
            };
            if r.hosts.is_empty() {
                t.any_host.insert(r.path, c).map_err(conflict)?;
            }
            for h in r.hosts {
                let table = match h {
                    HostPattern::Exact(x) => t.exact_hosts.entry(x.as_bytes().into()).or_default(),
                    HostPattern::Suffix(x) => {
                        t.suffix_hosts.entry(x.as_bytes().into()).or_default()
                    }
                };
                table.insert(r.path, c).map_err(conflict)?;
            }
        }
        Ok(t)
    }

    /// Finds the route for a request. `host` is the Host value (port allowed), `path` the origin-form
    /// target (query allowed).
    pub fn lookup(&self, host: &[u8], path: &[u8], method: Method) -> Lookup {
        let name = crate::http::headers::host_without_port(host).unwrap_or(b"");
        self.lookup_name(name, path, method)
    }

    /// [`RouteTable::lookup`] with the host name already split from its port (as the request parser
    /// records it in `RequestHead::host_name`); any case.
    pub fn lookup_name(&self, host: &[u8], path: &[u8], method: Method) -> Lookup {
        let path = match path.iter().position(|&b| b == b'?') {
            Some(q) => &path[..q],
            None => path,
        };
        let mut denied = false;
        let mut lower = [0u8; MAX_HOST];
        let host = if host.len() <= MAX_HOST && !host.is_empty() {
            let l = &mut lower[..host.len()];
            l.copy_from_slice(host);
            l.make_ascii_lowercase();
            // A fully qualified name may end with a dot.
            let l: &[u8] = l;
            l.strip_suffix(b".").unwrap_or(l)
        } else {
            b""
        };
        if !host.is_empty() {
            if let Some(t) = self.exact_hosts.get(host) {
                if let Some((route, matched)) = t.lookup(path, method, &mut denied) {
                    return Lookup::Found { route, matched };
                }
            }
            if !self.suffix_hosts.is_empty() {
                for (i, _) in host.iter().enumerate().filter(|(_, b)| **b == b'.') {
                    if let Some(t) = self.suffix_hosts.get(&host[i..]) {
                        if let Some((route, matched)) = t.lookup(path, method, &mut denied) {
                            return Lookup::Found { route, matched };
                        }
                    }
                }
            }
        }
        if let Some((route, matched)) = self.any_host.lookup(path, method, &mut denied) {
            return Lookup::Found { route, matched };
        }
        if denied {
            Lookup::MethodNotAllowed
        } else {
            Lookup::NotFound
        }
    }
}

/// Whether a path (query excluded) has `.` or `..` segments, literally or percent-encoded. Such paths
/// are refused: the gateway routes on the path as sent, and an upstream that resolves dot segments
/// would otherwise serve a different resource than the route allowed.
pub fn has_dot_segment(path: &[u8]) -> bool {
    let path = match path.iter().position(|&b| b == b'?') {
        Some(q) => &path[..q],
        None => path,
    };
    path.split(|&b| b == b'/').any(|seg| {
        let mut dots = 0;
        let mut i = 0;
        while i < seg.len() {
            if seg[i] == b'.' {
                i += 1;
            } else if seg.len() >= i + 3
                && seg[i] == b'%'
                && seg[i + 1] == b'2'
                && (seg[i + 2] | 0x20) == b'e'
            {
                i += 3;
            } else {
                return false;
            }
            dots += 1;
        }
        dots == 1 || dots == 2
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::Config;

    fn table(toml: &str) -> (Config, Arc<RouteTable>) {
        let c = Config::from_toml(toml).unwrap();
        let t = c.route_table().clone();
        (c, t)
    }

    const BASE: &str = r#"
        [upstreams.a]
        targets = ["127.0.0.1:1"]
    "#;

    fn name(c: &Config, l: Lookup) -> &str {
        match l {
            Lookup::Found { route, .. } => &c.routes[route].name,
            Lookup::MethodNotAllowed => "405",
            Lookup::NotFound => "404",
        }
    }

    #[test]
    fn most_specific_wins() {
        let (c, t) = table(&format!(
            r#"{BASE}
            [[routes]]
            name = "any"
            upstream = "a"
            [[routes]]
            name = "api"
            path_prefix = "/api/"
            upstream = "a"
            [[routes]]
            name = "api-v2"
            path_prefix = "/api/v2/"
            upstream = "a"
            [[routes]]
            name = "health"
            path_exact = "/api/health"
            upstream = "a"
            [[routes]]
            name = "wild"
            hosts = ["*.example.com"]
            path_prefix = "/"
            upstream = "a"
            [[routes]]
            name = "deep-wild"
            hosts = ["*.eu.example.com"]
            upstream = "a"
            [[routes]]
            name = "exact-host"
            hosts = ["api.example.com"]
            path_prefix = "/x"
            upstream = "a"
            [[routes]]
            name = "post-only"
            path_exact = "/submit"
            methods = ["POST"]
            upstream = "a"
        "#
        ));
        let l = |h: &str, p: &str, m| name(&c, t.lookup(h.as_bytes(), p.as_bytes(), m)).to_string();
        assert_eq!(l("other", "/", Method::Get), "any");
        assert_eq!(l("other", "/api/users?x=1", Method::Get), "api");
        assert_eq!(l("other", "/api/v2/users", Method::Get), "api-v2");
        assert_eq!(l("other", "/api/health", Method::Get), "health");
        assert_eq!(l("other", "/api/health/x", Method::Get), "api");
        assert_eq!(l("www.example.com", "/api/", Method::Get), "wild");
        assert_eq!(l("a.eu.example.com:8080", "/", Method::Get), "deep-wild");
        assert_eq!(l("API.Example.COM", "/x/1", Method::Get), "exact-host");
        assert_eq!(l("api.example.com", "/y", Method::Get), "wild");
        assert_eq!(l("example.com", "/", Method::Get), "any");
        assert_eq!(l("h", "/submit", Method::Post), "post-only");
        assert_eq!(l("h", "/submit", Method::Get), "any");
    }

    #[test]
    fn method_not_allowed_and_not_found() {
        let (c, t) = table(&format!(
            r#"{BASE}
            [[routes]]
            path_exact = "/only-get"
            methods = ["GET", "HEAD"]
            upstream = "a"
        "#
        ));
        assert_eq!(
            name(&c, t.lookup(b"h", b"/only-get", Method::Delete)),
            "405"
        );
        assert_eq!(name(&c, t.lookup(b"h", b"/nothing", Method::Get)), "404");
    }

    #[test]
    fn conflicting_routes_are_rejected() {
        let err = Config::from_toml(&format!(
            r#"{BASE}
            [[routes]]
            name = "one"
            path_prefix = "/a"
            upstream = "a"
            [[routes]]
            name = "two"
            path_prefix = "/a"
            upstream = "a"
        "#
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("routes[1]") && err.contains("\"one\""),
            "{err}"
        );
    }

    #[test]
    fn conflicts_name_both_routes_by_index() {
        let p = PathMatch::Prefix("/a".into());
        let m = |methods: &'static [Method]| RouteMatch {
            hosts: &[],
            path: &p,
            methods,
        };
        assert_eq!(
            RouteTable::build([m(&[]), m(&[Method::Get]), m(&[])]).unwrap_err(),
            Conflict { route: 2, other: 0 }
        );
    }

    #[test]
    fn dot_segments() {
        assert!(has_dot_segment(b"/a/../b"));
        assert!(has_dot_segment(b"/a/./b"));
        assert!(has_dot_segment(b"/a/%2e%2E/b"));
        assert!(has_dot_segment(b"/.."));
        assert!(!has_dot_segment(b"/a/...b"));
        assert!(!has_dot_segment(b"/a/.well-known/x"));
        assert!(!has_dot_segment(b"/a/b?x=../.."));
        assert!(!has_dot_segment(b"/"));
    }
}
