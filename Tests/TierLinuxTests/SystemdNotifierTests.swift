import Foundation
import Testing
import TierLinux
import TierTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// The sd_notify protocol against a real datagram socket standing in for the service manager.
struct SystemdNotifierTests {
    @Test(arguments: ["path", "abstract"])
    func messagesReachTheManager(kind: String) throws {
        let name = kind == "path" ? NSTemporaryDirectory() + "tierd-notify-\(UUID().uuidString.prefix(8))" : "@tierd-notify-\(UUID().uuidString.prefix(8))"
        defer { if kind == "path" { unlink(name) } }
        let manager = try ServiceManagerStub(name)
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": name])
        #expect(notifier.notify("READY=1\nSTATUS=test"))
        #expect(manager.receive() == "READY=1\nSTATUS=test")
    }

    @Test func withoutAManagerNothingIsSent() {
        let notifier = SystemdNotifier(environment: [:])
        #expect(!notifier.notify("READY=1"))
        #expect(notifier.watchdogInterval == nil)
    }

    @Test func theWatchdogIsOursOnlyWhenItsPidIsOurs() {
        #expect(SystemdNotifier(environment: ["WATCHDOG_USEC": "2000000"]).watchdogInterval == .seconds(2))
        #expect(SystemdNotifier(environment: ["WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "\(getpid())"]).watchdogInterval == .seconds(2))
        #expect(SystemdNotifier(environment: ["WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"], pid: 99).watchdogInterval == nil)
        #expect(SystemdNotifier(environment: ["WATCHDOG_USEC": "0"]).watchdogInterval == nil)
    }
}
