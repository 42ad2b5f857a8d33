import TierCore
import TierLinux

/// `tierctl validate`'s verdict on one policy file: what it holds, or the error naming the file,
/// line and field.
public struct PolicyCheck: Codable, Sendable, Equatable {
    public var file: String
    public var ok: Bool
    public var workloads: Int?
    public var optedIn: Int?
    public var error: String?

    public init(file: String) {
        self.file = file
        do {
            let policy = try PolicyFileLoader.load(path: file)
            ok = true
            workloads = policy.workloads.count
            optedIn = policy.workloads.filter { $0.rule.demote == .allowed }.count
        } catch {
            ok = false
            self.error = "\(error)"
        }
    }

    public var text: String {
        guard ok, let workloads, let optedIn else { return error ?? "\(file): invalid" }
        return "\(file): ok (\(workloads) workloads, \(optedIn) opted in to demotion)"
    }
}
