//! `skiff completions SHELL`: shell completions for the whole command line.

use std::io::{self, Write};

/// Prints completions of `cli` for `shell` on stdout.
pub fn run(shell: clap_complete::Shell, cli: clap::Command) -> anyhow::Result<()> {
    let mut out = Vec::new();
    write(shell, cli, &mut out)?;
    crate::output::print_raw(&out)
}

/// Writes completions of `cli` for `shell` to `out`.
pub fn write(
    shell: clap_complete::Shell,
    mut cli: clap::Command,
    out: &mut dyn Write,
) -> io::Result<()> {
    let name = cli.get_bin_name().unwrap_or(cli.get_name()).to_string();
    clap_complete::generate(shell, &mut cli, name, out);
    out.flush()
}
