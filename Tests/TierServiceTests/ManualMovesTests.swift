import Synchronization
import Testing
import TierCore
import TierLinux
import TierService

/// The manual-move queue between the endpoint's thread and the control loop, and the endpoint's
/// rules for asking: POST over the root-only socket, a group, a positive byte count.
struct ManualMovesTests {
    let board = StatusBoard(stallLimit: .seconds(10))

    func ask(_ method: String, _ path: String, uid: UInt32? = 0) -> LocalResponse {
        board.respond(to: LocalRequest(method: method, path: path, peerUID: uid))
    }

    func text(_ response: LocalResponse) -> String { String(decoding: response.body, as: UTF8.self) }

    @Test func aRequestIsQueuedThenReadBackAsItsResult() throws {
        let counter = Counter()
        board.manual.onSubmit { counter.add() }
        let accepted = ask("POST", "/demote?group=batch.slice%2Fjob1&bytes=67108864")
        #expect(accepted.status == 202)
        let queued: ManualResult = try StatusBoard.decodeJSON(accepted.body)
        #expect(queued.state == .queued && queued.request == ManualRequest(direction: .demote, group: CgroupPath("batch.slice/job1"), bytes: 64 << 20))
        #expect(counter.value == 1)

        let waiting = try #require(board.manual.nextQueued())
        #expect(waiting.id == queued.id)
        #expect(try StatusBoard.decodeJSON(ask("GET", "/manual?id=\(queued.id)").body, as: ManualResult.self).state == .queued)
        board.manual.finish(.refused(waiting.id, waiting.request, code: "opted_out", detail: "not opted in"))
        #expect(board.manual.nextQueued() == nil)
        let answer: ManualResult = try StatusBoard.decodeJSON(ask("GET", "/manual?id=\(queued.id)").body)
        #expect(answer.state == .refused && answer.refusal == "opted_out")
        #expect(ManualText.render(answer) == "demote /batch.slice/job1 refused (opted_out): not opted in\n")
    }

    @Test func theQueueIsBoundedAndOnlyRecentResultsAreKept() throws {
        let request = ManualRequest(direction: .promote, group: CgroupPath("db"))
        for _ in 0..<ManualMoves.maxQueued { #expect(board.manual.submit(request) != nil) }
        #expect(board.manual.submit(request) == nil)
        #expect(ask("POST", "/promote?group=db").status == 503)
        var last: UInt64 = 0
        for _ in 0..<(ManualMoves.resultsKept + ManualMoves.maxQueued) {
            if let next = board.manual.nextQueued() {
                board.manual.finish(.refused(next.id, next.request, code: "no_room", detail: ""))
                last = next.id
            }
            _ = board.manual.submit(request)
        }
        #expect(board.manual.result(of: 1) == nil)
        #expect(board.manual.result(of: last)?.state == .refused)
    }

    @Test func movingMemoryIsAskedForByPOSTOverTheSocketOnly() {
        #expect(ask("GET", "/demote?group=a").status == 405)
        #expect(ask("POST", "/demote?group=a", uid: nil).status == 403)
        #expect(text(ask("POST", "/demote?group=a", uid: nil)).contains("only over the status socket"))
        #expect(ask("POST", "/demote?group=a", uid: 1000).status == 403)
        #expect(ask("POST", "/status").status == 405)
        #expect(board.manual.nextQueued() == nil)
    }

    @Test func badArgumentsAreRefusedWithTheReason() {
        #expect(ask("POST", "/demote").status == 400)
        #expect(text(ask("POST", "/promote?group=")).contains("needs ?group=PATH"))
        #expect(ask("POST", "/demote?group=a&bytes=0").status == 400)
        #expect(text(ask("POST", "/demote?group=a&bytes=64M")).contains("bytes=64M: a positive number of bytes"))
        #expect(ask("GET", "/manual").status == 400)
        #expect(ask("GET", "/manual?id=99").status == 404)
        #expect(board.manual.nextQueued() == nil)
    }
}

/// A count shared with a @Sendable closure.
final class Counter: Sendable {
    private let count = Mutex(0)
    func add() { count.withLock { $0 += 1 } }
    var value: Int { count.withLock { $0 } }
}
