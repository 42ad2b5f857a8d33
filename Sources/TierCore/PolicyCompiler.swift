import Yams

/// A policy file that cannot be used, located to the character: `file:line:column: field: what is wrong`.
public struct PolicyError: Error, Equatable, Sendable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int
    /// The dotted path of the offending field ("workloads[1].dram_floor"), or "" for the file itself.
    public var field: String
    public var message: String

    public init(file: String, line: Int, column: Int, field: String, message: String) {
        self.file = file; self.line = line; self.column = column; self.field = field; self.message = message
    }

    public var description: String {
        let location = "\(file):\(line):\(column)"
        return field.isEmpty ? "\(location): \(message)" : "\(location): \(field): \(message)"
    }
}

/// Turns policy YAML into a validated `Policy`, or the first problem found.
///
/// The file is untrusted input (it may come from a ConfigMap and tierd runs as root), so before
/// YAML sees it: a size cap, UTF-8 validation and a refusal of anchors and aliases, whose expansion
/// can make a few hundred bytes cost minutes and gigabytes. The YAML layer yields only nodes with
/// positions; every meaning is given here, in one compile step.
public enum PolicyCompiler {
    /// No sensible policy comes near this; a larger file is refused before parsing.
    public static let maxFileBytes = 256 * 1024

    public static func compile(bytes: [UInt8], file: String) throws -> Policy {
        guard bytes.count <= maxFileBytes else {
            throw PolicyError(file: file, line: 1, column: 1, field: "",
                              message: "the file is \(bytes.count) bytes; a policy may be at most \(maxFileBytes)")
        }
        var decoder = UTF8()
        var iterator = bytes.makeIterator()
        var offset = 0, line = 1, column = 1
        var scalars = String.UnicodeScalarView()
        decoding: while true {
            switch decoder.decode(&iterator) {
            case .scalarValue(let scalar):
                scalars.append(scalar)
                offset += String(scalar).utf8.count
                if scalar == "\n" { line += 1; column = 1 } else { column += 1 }
            case .emptyInput: break decoding
            case .error:
                throw PolicyError(file: file, line: line, column: column, field: "",
                                  message: "not valid UTF-8 (byte offset \(offset))")
            }
        }
        return try compile(yaml: String(scalars), file: file)
    }

    public static func compile(yaml: String, file: String) throws -> Policy {
        if let alias = AliasScanner.firstAnchorOrAlias(in: yaml) {
            throw PolicyError(file: file, line: alias.line, column: alias.column, field: "",
                              message: "YAML anchors and aliases (& and *) are not allowed in a policy; quote a glob that starts with *")
        }
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch let error as YamlError {
            throw yamlError(error, file: file)
        } catch {
            throw PolicyError(file: file, line: 1, column: 1, field: "", message: "cannot parse YAML: \(error)")
        }
        guard let root else {
            throw PolicyError(file: file, line: 1, column: 1, field: "", message: "the file is empty; a policy needs at least `workloads: []`")
        }
        return try Compiler(file: file).policy(root)
    }

    private static func yamlError(_ error: YamlError, file: String) -> PolicyError {
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _):
            return PolicyError(file: file, line: mark.line, column: mark.column, field: "", message: "invalid YAML: \(problem)")
        case .composer(_, let problem, let mark, _):
            return PolicyError(file: file, line: mark.line, column: mark.column, field: "", message: "invalid YAML: \(problem)")
        case .duplicatedKeysInMapping(let keys, let context):
            let names = keys.map { "'\($0)'" }.joined(separator: ", ")
            return PolicyError(file: file, line: context.mark.line, column: context.mark.column, field: "",
                               message: "duplicate key \(names) in this mapping")
        default:
            return PolicyError(file: file, line: 1, column: 1, field: "", message: "invalid YAML: \(error)")
        }
    }
}

/// The compile step proper: walks the YAML nodes with the field path for messages.
private struct Compiler {
    let file: String

    func fail(_ node: Node?, _ field: String, _ message: String) -> PolicyError {
        PolicyError(file: file, line: node?.mark?.line ?? 1, column: node?.mark?.column ?? 1, field: field, message: message)
    }

    /// The mapping's entries by key, rejecting duplicate and unknown keys.
    func mapping(_ node: Node, _ field: String, allowed: [String]) throws -> [String: (key: Node, value: Node)] {
        guard case .mapping(let map) = node else {
            throw fail(node, field, "expected a mapping with keys \(allowed.joined(separator: ", "))")
        }
        var entries: [String: (key: Node, value: Node)] = [:]
        for (key, value) in map {
            let name = key.string ?? ""
            let keyField = field.isEmpty ? name : "\(field).\(name)"
            guard allowed.contains(name) else {
                throw fail(key, keyField, "unknown key; expected one of \(allowed.joined(separator: ", "))")
            }
            guard entries[name] == nil else { throw fail(key, keyField, "duplicate key") }
            entries[name] = (key, value)
        }
        return entries
    }

    /// One of an enumeration's words, or an error that names the field and the words it takes.
    func choice<Choice: RawRepresentable>(_ node: Node, _ field: String, _ allowed: String) throws -> Choice where Choice.RawValue == String {
        let text = try string(node, field)
        guard let value = Choice(rawValue: text) else { throw fail(node, field, "'\(text)' is not \(allowed)") }
        return value
    }

    func string(_ node: Node, _ field: String) throws -> String {
        guard case .scalar(let scalar) = node else { throw fail(node, field, "expected a single value") }
        return scalar.string
    }

    func parsed<T>(_ node: Node, _ field: String, _ parse: (String) -> Result<T, QuantityError>) throws -> T {
        switch parse(try string(node, field)) {
        case .success(let value): return value
        case .failure(let error): throw fail(node, field, error.message)
        }
    }

    func policy(_ root: Node) throws -> Policy {
        let top = try mapping(root, "", allowed: ["tiers", "controller", "workloads", "default"])
        var policy = Policy()
        if let tiers = top["tiers"] { policy.tiers = try tierSelection(tiers.value) }
        if let controller = top["controller"] { policy.controller = try controllerSettings(controller.value) }
        if let rule = top["default"] {
            policy.defaultRule = try workloadRule(rule.value, "default", requireDemote: false)
        }
        if let workloads = top["workloads"] {
            guard case .sequence(let items) = workloads.value else {
                throw fail(workloads.value, "workloads", "expected a list of workloads")
            }
            var seen: [String: Int] = [:]
            for (index, item) in items.enumerated() {
                let workload = try workloadPolicy(item, "workloads[\(index)]")
                if let first = seen[workload.name] {
                    throw fail(item["name"] ?? item, "workloads[\(index)].name",
                               "'\(workload.name)' is already the name of workloads[\(first)]")
                }
                seen[workload.name] = index
                policy.workloads.append(workload)
            }
        }
        return policy
    }

    func nodeList(_ node: Node, _ field: String) throws -> NodeSet {
        if case .scalar = node, let set = NodeSet.parseList(try string(node, field)), !set.isEmpty { return set }
        guard case .sequence(let items) = node, !items.isEmpty else {
            throw fail(node, field, "expected a non-empty list of node ids, such as [0] or \"1-2\"")
        }
        var set = NodeSet()
        for item in items {
            guard let id = item.int, (0...NodeSet.maxNodeID).contains(id) else {
                throw fail(item, field, "'\(item.string ?? "?")' is not a node id (0...\(NodeSet.maxNodeID))")
            }
            set.insert(id)
        }
        return set
    }

    func tierSelection(_ node: Node) throws -> TierSelection {
        if case .scalar = node {
            guard try string(node, "tiers") == "auto" else {
                throw fail(node, "tiers", "expected `auto` or a mapping {fast: [...], slow: [...]}")
            }
            return .auto
        }
        let map = try mapping(node, "tiers", allowed: ["fast", "slow"])
        guard let fastEntry = map["fast"], let slowEntry = map["slow"] else {
            throw fail(node, "tiers", "both `fast` and `slow` are required")
        }
        let fast = try nodeList(fastEntry.value, "tiers.fast")
        let slow = try nodeList(slowEntry.value, "tiers.slow")
        guard fast.isDisjoint(with: slow) else {
            throw fail(slowEntry.value, "tiers.slow", "node \(fast.intersection(slow)) is listed as both fast and slow")
        }
        return .explicit(fast: fast, slow: slow)
    }

    func controllerSettings(_ node: Node) throws -> ControllerSettings {
        let map = try mapping(node, "controller", allowed: ["interval", "idle_interval", "dram", "rate_limit", "psi_trigger", "mover_nice", "demotion_per_tick", "move_on_task_cpu", "parallel_moves",
                                                          "numa_balancing", "kernel_shield", "hot_promotion_rate", "lru_gen_batch_clearing",
                                                          "hot_pages", "hot_hold", "hot_look_interval"])
        var settings = ControllerSettings()
        if let entry = map["interval"] {
            let interval = try parsed(entry.value, "controller.interval", Quantity.parseDuration)
            guard interval >= .milliseconds(100), interval <= .seconds(3600) else {
                throw fail(entry.value, "controller.interval", "must be between 100ms and 1h")
            }
            settings.interval = interval
        }
        if let entry = map["idle_interval"] {
            settings.idleInterval = try parsed(entry.value, "controller.idle_interval", Quantity.parseDuration)
            guard settings.idleInterval >= settings.interval, settings.idleInterval <= .seconds(3600) else {
                throw fail(entry.value, "controller.idle_interval", "must be at least controller.interval and at most 1h (equal to the interval: no idle pacing)")
            }
        }
        if let entry = map["dram"] {
            let dram = try mapping(entry.value, "controller.dram", allowed: ["low", "high", "watch", "lookahead", "reserve"])
            if let low = dram["low"] { settings.dramLowFree = try parsed(low.value, "controller.dram.low", Quantity.parsePercent) }
            if let high = dram["high"] { settings.dramHighFree = try parsed(high.value, "controller.dram.high", Quantity.parsePercent) }
            guard settings.dramLowFree < settings.dramHighFree else {
                throw fail(dram["high"]?.value ?? entry.value, "controller.dram.high",
                           "must be above dram.low (\(percent(settings.dramLowFree))), or demotion would never stop")
            }
            guard settings.dramHighFree <= 0.98 else {
                throw fail(dram["high"]?.value ?? entry.value, "controller.dram.high", "must be at most 98%: the kernel needs some DRAM free")
            }
            if let watch = dram["watch"] {
                settings.dramWatch = try parsed(watch.value, "controller.dram.watch", Quantity.parseDuration)
                guard settings.dramWatch == .zero || (settings.dramWatch >= .milliseconds(10) && settings.dramWatch <= .seconds(10)) else {
                    throw fail(watch.value, "controller.dram.watch", "must be 0s (off) or between 10ms and 10s")
                }
            }
            if let reserve = dram["reserve"] {
                settings.dramReserve = try parsed(reserve.value, "controller.dram.reserve", Quantity.parseSize)
            }
            if let lookahead = dram["lookahead"] {
                settings.dramLookahead = try parsed(lookahead.value, "controller.dram.lookahead", Quantity.parseDuration)
                guard settings.dramLookahead <= .seconds(60) else {
                    throw fail(lookahead.value, "controller.dram.lookahead", "must be at most 60s (0s: react to free DRAM only as it is)")
                }
            }
        }
        if let entry = map["rate_limit"] {
            settings.rateLimit = try parsed(entry.value, "controller.rate_limit", Quantity.parseRate)
            guard settings.rateLimit >= 1 << 20 else {
                throw fail(entry.value, "controller.rate_limit", "must be at least 1MiB/s")
            }
        }
        if let entry = map["demotion_per_tick"] {
            settings.demotionPerTick = try parsed(entry.value, "controller.demotion_per_tick", Quantity.parseSize)
            guard settings.demotionPerTick >= 1 << 20 else {
                throw fail(entry.value, "controller.demotion_per_tick", "must be at least 1MiB")
            }
        }
        if let entry = map["mover_nice"] {
            guard let nice = entry.value.int, (-20...19).contains(nice) else {
                throw fail(entry.value, "controller.mover_nice", "expected a nice value, a whole number from -20 to 19")
            }
            settings.moverNice = Int32(nice)
        }
        if let entry = map["move_on_task_cpu"] {
            guard let value = entry.value.bool else { throw fail(entry.value, "controller.move_on_task_cpu", "expected true or false") }
            settings.moveOnTaskCPU = value
        }
        if let entry = map["parallel_moves"] {
            guard let value = entry.value.bool else { throw fail(entry.value, "controller.parallel_moves", "expected true or false") }
            settings.parallelMoves = value
        }
        if let entry = map["numa_balancing"] {
            settings.numaBalancing = try choice(entry.value, "controller.numa_balancing", "`leave` (the host's setting), `off` or `tiering` (the kernel promotes hot slow pages)")
        }
        if let entry = map["kernel_shield"] {
            settings.kernelShield = try choice(entry.value, "controller.kernel_shield",
                                               "`low` (memory.low, best effort) or `min` (memory.min, a guarantee the OOM killer backs)")
        }
        if let entry = map["hot_pages"] {
            settings.hotPages = try choice(entry.value, "controller.hot_pages", "`written` (pages written on the slow tier come back) or `off`")
        }
        if let entry = map["hot_hold"] {
            settings.hotHold = try parsed(entry.value, "controller.hot_hold", Quantity.parseDuration)
            guard settings.hotPages != .off else { throw fail(entry.value, "controller.hot_hold", "applies only with `hot_pages: written`") }
        }
        if let entry = map["hot_look_interval"] {
            settings.hotLookInterval = try parsed(entry.value, "controller.hot_look_interval", Quantity.parseDuration)
            guard settings.hotPages != .off else { throw fail(entry.value, "controller.hot_look_interval", "applies only with `hot_pages: written`") }
            guard settings.hotLookInterval >= .milliseconds(500) else {
                throw fail(entry.value, "controller.hot_look_interval", "must be at least 500ms: each look reads every looked-at task's page map")
            }
        }
        if let entry = map["hot_promotion_rate"] {
            settings.hotPromotionRate = try parsed(entry.value, "controller.hot_promotion_rate", Quantity.parseRate)
            guard settings.hotPromotionRate >= 1 << 20 else {
                throw fail(entry.value, "controller.hot_promotion_rate", "must be at least 1MiB/s (the kernel counts whole MiB per second)")
            }
            guard settings.numaBalancing == .tiering || settings.hotPages != .off else {
                throw fail(entry.value, "controller.hot_promotion_rate", "applies only with `hot_pages: written` or `numa_balancing: tiering`")
            }
        }
        if let entry = map["lru_gen_batch_clearing"] {
            settings.lruGenBatchClearing = try choice(entry.value, "controller.lru_gen_batch_clearing", "`leave` (the host's setting) or `off`")
        }
        if let entry = map["psi_trigger"] {
            let psi = try mapping(entry.value, "controller.psi_trigger", allowed: ["stall", "window"])
            if let stall = psi["stall"] { settings.psiStall = try parsed(stall.value, "controller.psi_trigger.stall", Quantity.parseDuration) }
            if let window = psi["window"] {
                settings.psiWindow = try parsed(window.value, "controller.psi_trigger.window", Quantity.parseDuration)
                guard settings.psiWindow >= .milliseconds(500), settings.psiWindow <= .seconds(10) else {
                    throw fail(window.value, "controller.psi_trigger.window", "the kernel accepts windows from 500ms to 10s")
                }
            }
            guard settings.psiStall > .zero, settings.psiStall <= settings.psiWindow else {
                throw fail(psi["stall"]?.value ?? entry.value, "controller.psi_trigger.stall", "must be above 0 and at most the window")
            }
        }
        return settings
    }

    func workloadPolicy(_ node: Node, _ field: String) throws -> WorkloadPolicy {
        let map = try mapping(node, field, allowed: ["name", "match"] + Compiler.ruleKeys)
        guard let nameEntry = map["name"] else { throw fail(node, field, "every workload needs a `name`") }
        let name = try string(nameEntry.value, "\(field).name")
        guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }),
              name != Policy.defaultWorkloadName else {
            throw fail(nameEntry.value, "\(field).name",
                       "'\(name)' is not a usable name: letters, digits, '-', '_' and '.' only, and not `default`")
        }
        guard let matchEntry = map["match"] else { throw fail(node, field, "workload '\(name)' needs `match`: a list of cgroup path globs") }
        let patterns: [Node]
        switch matchEntry.value {
        case .sequence(let items): patterns = Array(items)
        case .scalar: patterns = [matchEntry.value]
        default: throw fail(matchEntry.value, "\(field).match", "expected a list of cgroup path globs")
        }
        guard !patterns.isEmpty else { throw fail(matchEntry.value, "\(field).match", "the list is empty: this workload would match nothing") }
        var globs: [CgroupGlob] = []
        for (i, patternNode) in patterns.enumerated() {
            let pattern = try string(patternNode, "\(field).match[\(i)]")
            let parts = pattern.split(separator: "/", omittingEmptySubsequences: false)
            let trimmed = pattern.hasPrefix("/") ? Array(parts.dropFirst()) : parts
            guard !trimmed.isEmpty, !trimmed.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }) else {
                throw fail(patternNode, "\(field).match[\(i)]",
                           "'\(pattern)' is not a cgroup path glob: components may not be empty, '.' or '..'")
            }
            globs.append(CgroupGlob(trimmed.joined(separator: "/")))
        }
        let rule = try workloadRule(node, field, requireDemote: true, entries: map)
        return WorkloadPolicy(name: name, matches: globs, rule: rule)
    }

    static let ruleKeys = ["demote", "priority", "dram_floor", "pressure_guard", "mempolicy", "promote", "rate_limit", "demotion_mode"]

    func workloadRule(_ node: Node, _ field: String, requireDemote: Bool,
                      entries: [String: (key: Node, value: Node)]? = nil) throws -> WorkloadRule {
        let map = try entries ?? mapping(node, field, allowed: Compiler.ruleKeys)
        guard let demoteEntry = map["demote"] else {
            if requireDemote { throw fail(node, field, "`demote: allowed` (opt-in) or `demote: never` (opt-out) is required") }
            return try optOutOnly(map, field, WorkloadRule.observeOnly)
        }
        let value = try string(demoteEntry.value, "\(field).demote")
        guard let demote = DemoteMode(rawValue: value) else {
            throw fail(demoteEntry.value, "\(field).demote", "'\(value)' is not `allowed` or `never`")
        }
        var rule = WorkloadRule(demote: demote, promote: demote == .never && requireDemote)
        if let entry = map["mempolicy"] {
            rule.mempolicy = try choice(entry.value, "\(field).mempolicy", "`respect` or `override`")
        }
        if let entry = map["rate_limit"] {
            rule.rateLimit = try parsed(entry.value, "\(field).rate_limit", Quantity.parseRate)
            guard rule.rateLimit! >= 1 << 20 else { throw fail(entry.value, "\(field).rate_limit", "must be at least 1MiB/s") }
        }
        if demote == .never { return try optOutOnly(map, field, rule) }
        if let entry = map["promote"] {
            throw fail(entry.key, "\(field).promote", "applies only to `demote: never` workloads")
        }
        if let entry = map["priority"] {
            guard let priority = entry.value.int, (-1000...1000).contains(priority) else {
                throw fail(entry.value, "\(field).priority", "expected a whole number from -1000 to 1000 (lower is demoted first)")
            }
            rule.priority = priority
        }
        if let entry = map["dram_floor"] { rule.dramFloor = try parsed(entry.value, "\(field).dram_floor", Quantity.parseSize) }
        if let entry = map["demotion_mode"] {
            rule.demotionMode = try choice(entry.value, "\(field).demotion_mode", "`cold` (coldest pages first) or `task` (whole task sets)")
        }
        if let entry = map["pressure_guard"] {
            let guardMap = try mapping(entry.value, "\(field).pressure_guard", allowed: ["some_avg10", "full_avg10"])
            guard guardMap.count == 1, let (key, pair) = guardMap.first else {
                throw fail(entry.value, "\(field).pressure_guard", "give exactly one of some_avg10 or full_avg10")
            }
            let threshold = try parsed(pair.value, "\(field).pressure_guard.\(key)", Quantity.parsePercent)
            guard threshold > 0 else { throw fail(pair.value, "\(field).pressure_guard.\(key)", "0% would stop all demotion; remove the guard instead") }
            rule.pressureGuard = PressureGuard(kind: key == "some_avg10" ? .some : .full, threshold: threshold)
        }
        return rule
    }

    /// Keys that make sense only for opted-in workloads are refused on opt-out ones, so a
    /// misplaced `dram_floor` cannot silently do nothing.
    func optOutOnly(_ map: [String: (key: Node, value: Node)], _ field: String, _ base: WorkloadRule) throws -> WorkloadRule {
        var rule = base
        for key in ["priority", "dram_floor", "pressure_guard", "demotion_mode"] {
            if let entry = map[key] { throw fail(entry.key, "\(field).\(key)", "applies only to `demote: allowed` workloads") }
        }
        if let entry = map["promote"] {
            guard let promote = entry.value.bool else { throw fail(entry.value, "\(field).promote", "expected true or false") }
            rule.promote = promote
        }
        return rule
    }

    func percent(_ fraction: Double) -> String { "\((fraction * 1000).rounded() / 10)%" }
}

/// Finds the first YAML anchor (`&a`) or alias (`*a`) without running a YAML parser: both can
/// only stand where a node starts, after indentation, `- `, `: `, `[`, `{` or `,`, outside
/// quotes and comments. Block scalar bodies are skipped.
enum AliasScanner {
    static func firstAnchorOrAlias(in text: String) -> (line: Int, column: Int)? {
        var blockIndent: Int?
        // Lines end at each "\n" scalar: split at the Character, a file with CRLF endings would be
        // one line ("\r\n" is one Character), and an anchor starting its second line go unseen.
        for (lineIndex, rawLine) in text.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = Array(rawLine)
            let indent = line.prefix { $0 == " " }.count
            if let block = blockIndent {
                if indent > block || line.allSatisfy({ $0 == " " || $0 == "\r" }) { continue }
                blockIndent = nil
            }
            var nodeStart = true
            var quote: Unicode.Scalar?
            var i = 0
            while i < line.count {
                let c = line[i]
                if let q = quote {
                    if c == q { quote = nil }
                    else if c == "\\" && q == "\"" { i += 1 }
                    i += 1; continue
                }
                switch c {
                case " ", "\t", "\r": i += 1; continue
                case "#" where i == 0 || line[i - 1] == " ": i = line.count; continue
                case "&", "*": if nodeStart { return (lineIndex + 1, i + 1) }
                case "\"", "'": if nodeStart { quote = c }
                case "-", "?":
                    if i + 1 == line.count || line[i + 1] == " " { nodeStart = true; i += 1; continue }
                case ":":
                    if i + 1 == line.count || line[i + 1] == " " { nodeStart = true; i += 1; continue }
                case "[", "{", ",": nodeStart = true; i += 1; continue
                case "|", ">": if nodeStart { blockIndent = indent }
                default: break
                }
                nodeStart = false
                i += 1
            }
        }
        return nil
    }
}
