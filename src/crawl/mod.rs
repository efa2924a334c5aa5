//! The crawl stage of `qpipe produce`: a spec says what to extract
//! (`spec`, `spider`), the crawler gets each page politely (`crawler`,
//! `fetch`, `robots`, `hosts`) through one `session` (cookies, headers,
//! proxy, login, and the one HTTP exchange every request goes through),
//! reads it as a `page` (decoded by `charset`), and a frontier
//! (`frontier`: in-process or shared in Redis) decides what to fetch next.
//! Why a page yielded nothing is a `failure`, the lowest file of all.

pub mod charset;
pub mod crawler;
pub mod failure;
pub mod fetch;
pub mod frontier;
pub mod hosts;
pub mod origin;
pub mod page;
pub mod robots;
pub mod session;
pub mod spec;
pub mod spider;
