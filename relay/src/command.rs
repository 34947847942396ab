//! Running the system's programs (systemctl, postfix check, doveconf): a failure is one line.

use std::process::Command;

use crate::Error;

/// Runs `program ARGS`; when it fails, the first line of its error output is the message.
pub fn run(program: &str, args: &[&str]) -> Result<(), Error> {
    let command = format!("{program} {}", args.join(" "));
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| Error::Command {
            command: command.clone(),
            reason: e.to_string(),
        })?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    Err(Error::Command {
        command,
        reason: stderr.trim().lines().next().unwrap_or("failed").to_string(),
    })
}
