//! The consume stage: where popped items come from (`source`: a `BatchSource`, BRPOP or
//! reliable batches), the loop each popper thread runs (`popper`), what is set aside (`poison`: dead letters), and where
//! they go (`sink`: the JSON Lines file, committed then acknowledged).

pub mod poison;
pub mod popper;
pub mod settings;
pub mod sink;
pub mod source;
