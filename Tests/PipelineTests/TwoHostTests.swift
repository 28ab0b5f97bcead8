import Formats
import Foundation
import TestSupport
import XCTest

/// Two hosts with their own network addresses, over TCP: network namespaces
/// joined by a veth pair (`hostfiles/netns-hosts.sh`, docs/clusters.md's recipe for
/// trying a multi-node launch on one machine), one rank in each.
final class TwoHostTests: XCTestCase {
    static let hostfiles = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../hostfiles").standardized.path
    static let script = hostfiles + "/netns-hosts.sh"
    /// Short (interface names are at most 15 characters) and unique to this run.
    let prefix = "sct\(getpid() % 10000)h"
    private var namespacesUp = false

    private var environment: [String: String] { TestProcess.cleanEnvironment(adding: ["SCCAM_NETNS_PREFIX": prefix]) }

    override func setUpWithError() throws {
        let ip = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip"].first { FileManager.default.isExecutableFile(atPath: $0) }
        guard ip != nil else { throw XCTSkip("iproute2's ip is not installed: no network namespaces, so no two-host test") }
        let up = try TestProcess.run("/bin/bash", [Self.script, "up"], environment: environment, timeout: 60)
        namespacesUp = true  // remove whatever part of them was made, also when `up` failed
        guard up.status == 0 else {
            throw XCTSkip("network namespaces cannot be created here (needs root or CAP_NET_ADMIN), so the two-host test is skipped: \(up.standardError)")
        }
    }

    override func tearDown() {
        if namespacesUp { _ = try? TestProcess.run("/bin/bash", [Self.script, "down"], environment: environment, timeout: 60) }
    }

    /// `mpirun` started on the first host, one rank per host, TCP only on the veth addresses.
    private func onTwoHosts(_ arguments: [String], timeout: TimeInterval = 300) throws -> ProcessResult {
        let ip = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip"].first { FileManager.default.isExecutableFile(atPath: $0) }!
        let mpirun = ["/usr/bin/mpirun", "/usr/local/bin/mpirun"].first { FileManager.default.isExecutableFile(atPath: $0) } ?? "/usr/bin/mpirun"
        let hostfile = try TemporaryDirectory(prefix: "sccam-hostfile")
        defer { hostfile.remove() }
        try AtomicFile.write("127.100.0.1 slots=1\n127.100.0.2 slots=1\n", to: hostfile.path + "/hosts")
        let launcher = ["netns", "exec", "\(prefix)1", mpirun, "--hostfile", hostfile.path + "/hosts", "-np", "2",
                        "--mca", "plm_rsh_agent", "\(Self.script) agent", "--mca", "btl", "tcp,self",
                        "--mca", "btl_tcp_if_include", "127.100.0.0/24", "--mca", "oob_tcp_if_include", "127.100.0.0/24",
                        "--bind-to", "none", "-x", "SCCAM_NETNS_PREFIX"]
        return try TestProcess.run(ip, launcher + [TestProcess.sccam] + arguments, environment: environment, timeout: timeout)
    }

    func testCollectivesAndTrainingAcrossTwoHostsEqualOneRank() throws {
        let check = try onTwoHosts(["env", "--check-collectives", "--probe-seconds", "0"])
        XCTAssertEqual(check.status, 0, "\(check)")
        XCTAssertTrue(check.standardOutput.contains("rank 1 on \(prefix)2"), "rank 1 runs on the second host:\n\(check.standardOutput)")
        XCTAssertEqual(check.standardOutput.components(separatedBy: "collectives ok").count - 1, 2, check.standardOutput)

        let temporary = try TemporaryDirectory(prefix: "sccam-two-hosts")
        defer { temporary.remove() }
        let voc = try TinyVOC.make(in: temporary.path)
        func arguments(_ work: String) -> [String] {
            ["train", "--voc-root", voc.root, "--work", work, "--round", "0", "--list", "train", "--width-divisor", "16",
             "--batch", "4", "--crop", "32", "--threads", "1", "--seed", "11", "--epochs", "3", "--checkpoint-every", "1"]
        }
        let one = try TestProcess.sccam(arguments(temporary.path + "/one"), timeout: 600)
        XCTAssertEqual(one.status, 0, "\(one)")
        let two = try onTwoHosts(arguments(temporary.path + "/two"), timeout: 600)
        XCTAssertEqual(two.status, 0, "\(two)")
        let a = try Safetensors.read(temporary.path + "/one/weights/R0_ep2.safetensors").tensors.flatMap { try $0.floatValues() }
        let b = try Safetensors.read(temporary.path + "/two/weights/R0_ep2.safetensors").tensors.flatMap { try $0.floatValues() }
        let initial = try Safetensors.read(temporary.path + "/one/weights/R0_ep0.safetensors").tensors.flatMap { try $0.floatValues() }
        XCTAssertEqual(a.count, b.count)
        XCTAssertNotEqual(a, initial, "training moved the weights")
        XCTAssertLessThanOrEqual(zip(a, b).map { abs($0 - $1) }.max()!, 1e-5, "2 hosts x 2 images = 1 rank x 4 images")
    }
}
