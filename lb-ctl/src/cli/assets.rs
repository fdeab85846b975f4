//! `lb-ctl assets --out DIR` (hidden): the man pages (section 8, one per
//! command and subcommand) and the shell completions (bash, zsh, fish),
//! generated from the command line's own definition, for the package.
use std::{
    fs,
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::Context as _;
use clap::CommandFactory as _;
use clap_complete::Shell;

#[derive(Debug, clap::Args)]
pub struct AssetsArgs {
    /// Where to write `man/` and `completions/`.
    #[arg(long)]
    pub out: PathBuf,
}

/// Writes the man page of `cmd` (its page `name`, typed as `typed`) and
/// of each of its subcommands (`name-sub`, typed `typed sub`),
/// recursively.
fn man_pages(cmd: &clap::Command, name: &str, typed: &str, dir: &Path) -> anyhow::Result<usize> {
    let page = cmd.clone().name(name.to_owned()).bin_name(typed.to_owned());
    let mut text = Vec::new();
    clap_mangen::Man::new(page)
        .section("8")
        .manual("lb manual")
        .source(format!("lb {}", env!("CARGO_PKG_VERSION")))
        .render(&mut text)?;
    let file = dir.join(format!("{name}.8"));
    fs::write(&file, text).with_context(|| format!("writing {}", file.display()))?;
    let mut written = 1;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        if sub.get_name() == "help" {
            continue;
        }
        let sub_name = sub.get_name();
        written += man_pages(
            sub,
            &format!("{name}-{sub_name}"),
            &format!("{typed} {sub_name}"),
            dir,
        )?;
    }
    Ok(written)
}

/// clap_complete (4.6) spells a subcommand's state `lb__ctl__subcmd__vip`
/// where it walks the words and `lb__subcmd__ctl__subcmd__vip` where it
/// matches them, for a binary name with a hyphen, so nothing past the
/// first word completes (clap-rs/clap#6421, open). Spelled one way here;
/// the package test completes subcommands and their options.
fn fix_bash_hyphen(script: &[u8]) -> Vec<u8> {
    String::from_utf8_lossy(script)
        .replace("lb__subcmd__ctl__", "lb__ctl__")
        .into_bytes()
}

pub fn run(args: &AssetsArgs) -> anyhow::Result<ExitCode> {
    let mut cmd = super::Args::command();
    cmd.build();
    let man = args.out.join("man");
    let completions = args.out.join("completions");
    for dir in [&man, &completions] {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let pages = man_pages(&cmd, "lb-ctl", "lb-ctl", &man)?;
    for (shell, file) in [
        (Shell::Bash, "lb-ctl"),
        (Shell::Zsh, "_lb-ctl"),
        (Shell::Fish, "lb-ctl.fish"),
    ] {
        let mut text = Vec::new();
        clap_complete::generate(shell, &mut cmd, "lb-ctl", &mut text);
        if shell == Shell::Bash {
            text = fix_bash_hyphen(&text);
        }
        let path = completions.join(file);
        fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    println!(
        "{pages} man pages in {}, completions for bash, zsh and fish in {}",
        man.display(),
        completions.display()
    );
    Ok(ExitCode::SUCCESS)
}
