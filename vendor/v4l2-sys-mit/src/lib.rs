//! Raw V4L2 bindings (`linux/videodev2.h`), as upstream v4l2-sys-mit 0.3.0 generates them
//! with bindgen at build time, but generated once per target and committed so building
//! needs no libclang. See README.md for how to regenerate and add a target.
#![allow(clippy::all)]
#![allow(deref_nullptr)]
#![allow(non_camel_case_types)]
#![allow(non_snake_case)]
#![allow(non_upper_case_globals)]
#![allow(unknown_lints)]

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
include!("bindings/x86_64.rs");

#[cfg(all(target_os = "linux", target_arch = "aarch64"))]
include!("bindings/aarch64.rs");

#[cfg(all(target_os = "linux", target_arch = "arm"))]
include!("bindings/arm.rs");

#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64", target_arch = "arm")
)))]
compile_error!(
    "no pre-generated V4L2 bindings for this target: generate them as \
     vendor/v4l2-sys-mit/README.md describes"
);
