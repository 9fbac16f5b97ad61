//! The script side: the one engine builder, the registry of primitives (the API's single
//! source of truth), their implementation ([`host::Host`]), option parsing, the sandboxed
//! module resolver and the embedded stdlib.

pub mod callbacks;
pub mod definitions;
pub mod engine;
pub mod errors;
pub mod exec;
pub mod host;
pub mod limits;
pub mod observer;
pub mod options;
pub mod params;
pub mod registry;
pub mod resolver;
pub mod stdlib;
pub mod types;
