//! Integration tests: the real `regbake` binary in a temp dir, with real
//! validators, and stub programs on PATH where a VM would be needed.

mod auth;
mod box_refusals;
mod boxfile;
mod common;
mod completions;
mod config;
mod distro;
mod fleet;
mod gc;
mod golden;
mod init;
mod install_status;
mod interrupted;
mod ksdir;
mod ksdisk;
mod layers;
mod outdir;
mod packer;
mod packer_box;
mod probe;
mod probe_bodies;
mod probe_hostile;
mod props;
mod readme;
mod registry;
mod render;
mod report_scripts;
mod s3;
mod scripts;
mod serve_hostile;
mod served;
mod status_page;
mod templates;
mod testbed;
mod vagrant;
