//! Integration tests: the real `regbake` binary in a temp dir, with real
//! validators, and stub programs on PATH where a VM would be needed.

// Test tables and scenario scripts are long by nature; lib code has the limit.
#![allow(clippy::too_many_lines)]

mod auth;
mod box_interrupts;
mod box_refusals;
mod boxfile;
mod common;
mod completions;
mod config;
mod distro;
mod error_messages;
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
mod packer_image;
mod probe;
mod probe_bodies;
mod probe_hostile;
mod props;
mod readme;
mod real_interrupt;
mod real_packer;
mod real_vm;
mod registry;
mod registry_tls_files;
mod render;
mod report_scripts;
mod s3;
mod s3_credentials;
mod scripts;
mod serve_hostile;
mod served;
mod status_page;
mod templates;
mod testbed;
mod vagrant;
mod vagrant_interrupted;
