//! The crawl stage of `qpipe produce`: a spec says what to extract
//! (`spec`, `spider`), the crawler gets each page politely (`crawler`,
//! `fetch`, `page`, `robots`, `hosts`) in one `session` (cookies, headers,
//! proxy, login), and a frontier
//! (`frontier`: in-process or shared in Redis) decides what to fetch next.

pub mod crawler;
pub mod fetch;
pub mod frontier;
pub mod hosts;
pub mod origin;
pub mod page;
pub mod robots;
pub mod session;
pub mod spec;
pub mod spider;
