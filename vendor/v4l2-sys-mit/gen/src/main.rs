//! Runs bindgen over ../wrapper.h for one target, exactly as upstream v4l2-sys-mit 0.3.0's
//! build script does, plus the target's clang triple and kernel/libc headers.
//!
//! Usage: v4l2-sys-mit-gen <clang-target> <output.rs> [<include dir>...]

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [target, out, includes @ ..] = args.as_slice() else {
        eprintln!("usage: v4l2-sys-mit-gen <clang-target> <output.rs> [<include dir>...]");
        std::process::exit(2);
    };
    let wrapper = concat!(env!("CARGO_MANIFEST_DIR"), "/../wrapper.h");
    let mut builder = bindgen::Builder::default()
        .header(wrapper)
        .clang_arg(format!("--target={target}"));
    for dir in includes {
        builder = builder.clang_arg(format!("-isystem{dir}"));
    }
    builder
        .generate()
        .expect("Failed to generate bindings")
        .write_to_file(out)
        .expect("Failed to write bindings");
}
