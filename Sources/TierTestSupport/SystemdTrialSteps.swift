/// The README's systemd install, word for word: the lab's `systemd-unit` scenario runs these
/// lines, and a unit test holds the README to them, so the trial is the README's own.
public enum SystemdTrialSteps {
    /// The "Install" block's lines that place the binaries, policy, man pages and completion.
    public static let readmeInstall = [
        "sudo install -m 0755 .build/release/tierd .build/release/tierctl /usr/local/bin/",
        "sudo install -D -m 0644 config/tierd.yaml /etc/tierd/tierd.yaml",
        "sudo install -D -m 0644 -t /usr/local/share/man/man1 docs/man/*.1",
        "tierctl --generate-completion-script bash | sudo tee /usr/share/bash-completion/completions/tierctl >/dev/null",
    ]
    /// The systemd bullet's command.
    public static let readmeEnable = "sudo install -m 0644 deploy/systemd/tierd.service /etc/systemd/system/ && sudo systemctl daemon-reload && sudo systemctl enable --now tierd"
}
