// swift-tools-version:6.1
import PackageDescription

let strict: [SwiftSetting] = [.swiftLanguageMode(.v6)]

let package = Package(
    name: "tierd",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "tierd", targets: ["tierd"]),
        .executable(name: "tierctl", targets: ["tierctl"]),
        .executable(name: "tierlab", targets: ["tierlab"]),
        .executable(name: "tierload", targets: ["tierload"]),
        .executable(name: "tierbench", targets: ["tierbench"]),
        .executable(name: "tierfuzz", targets: ["tierfuzz"]),
        .library(name: "TierCore", targets: ["TierCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
    ],
    targets: [
        // libnuma (Debian: libnuma-dev): migrate_pages(2) and move_pages(2) wrappers.
        .systemLibrary(name: "CNuma", path: "Sources/CNuma", providers: [.apt(["libnuma-dev"])]),
        // Pure core: models, kernel-text parsers, policy, planner. No I/O, no clock.
        .target(name: "TierCore", dependencies: [.product(name: "Yams", package: "Yams")], swiftSettings: strict),
        // The Linux edge: every file read, PSI trigger and syscall, rooted at a directory.
        .target(name: "TierLinux", dependencies: ["TierCore", "CNuma"], swiftSettings: strict),
        // The daemon loop as a ServiceLifecycle service.
        .target(
            name: "TierService",
            dependencies: [
                "TierCore", "TierLinux",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strict),
        .target(name: "TierTestSupport", dependencies: ["TierCore", "TierLinux"], swiftSettings: strict),
        .executableTarget(
            name: "tierd",
            dependencies: [
                "TierService", "TierLinux", "TierCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict),
        .executableTarget(
            name: "tierctl",
            dependencies: [
                "TierService", "TierLinux", "TierCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict),
        .executableTarget(
            name: "tierload",
            dependencies: ["TierLinux", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: strict),
        .executableTarget(
            name: "tierlab",
            dependencies: ["TierLinux", "TierCore", "TierTestSupport", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: strict),
        .executableTarget(
            name: "tierbench",
            dependencies: ["TierService", "TierLinux", "TierCore", "TierTestSupport",
                           .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: strict),
        // Fuzz targets for every parser of kernel text and for the policy (scripts/fuzz.sh).
        .executableTarget(name: "tierfuzz", dependencies: ["TierCore"], swiftSettings: strict),
        .testTarget(name: "TierCoreTests", dependencies: ["TierCore", "TierTestSupport", .product(name: "Yams", package: "Yams")],
                    swiftSettings: strict),
        .testTarget(name: "TierLinuxTests", dependencies: ["TierLinux", "TierCore", "TierTestSupport"], swiftSettings: strict),
        .testTarget(name: "TierServiceTests", dependencies: ["TierService", "TierLinux", "TierCore", "TierTestSupport"], swiftSettings: strict),
    ]
)
