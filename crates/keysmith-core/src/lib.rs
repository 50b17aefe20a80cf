//! The pieces every keysmith crate shares and none of them owns: the adjustable clock that tests move
//! across windows, durations as users write them (`30s`, `5m`, `1h`), and [`SecretValue`], the only
//! type that holds a key's value and which never prints it.

pub mod clock;
pub mod duration;
mod secret_value;

pub use clock::Clock;
pub use secret_value::SecretValue;
