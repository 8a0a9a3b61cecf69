import Foundation
import PatinaGit
import PatinaModelProxy
import PatinaSandbox
import PatinaTemplates
import Testing
@testable import PatinaCore

/// Each error of the layers below maps to one kind, and each kind to one exit code.
@Suite struct PatinaErrorTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let name: String
        let error: any Error
        let kind: PatinaError.Kind
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(name: "plan error", error: PlanError("task is empty"), kind: .badInput),
        Case(name: "unknown --base", error: GitError.unknownRevision("nosuch"), kind: .badInput),
        Case(name: "merge conflicts", error: GitError.mergeConflicts(branch: "main", paths: ["a"]), kind: .badInput),
        Case(name: "libgit2 failure", error: GitError.libgit2(operation: "open", code: .other(-1), message: "x"), kind: .environment),
        Case(name: "bad duration", error: DurationParser.Invalid(text: "soon"), kind: .badInput),
        Case(name: "bad allow entry", error: FirewallError.invalidEntry(entry: "10.0.0.0/99", source: "--allow", reason: "x"), kind: .badInput),
        Case(name: "unreadable seccomp profile", error: SeccompError.invalidProfile(path: "/nonexistent", reason: "unreadable"), kind: .badInput),
        Case(name: "libseccomp failure", error: SeccompError.library(operation: "load", syscall: nil, architecture: nil, code: -1), kind: .environment),
        Case(name: "docker missing", error: DockerError.missing("docker"), kind: .environment),
        Case(name: "docker daemon down", error: DockerError.daemonDown("no socket"), kind: .environment),
        Case(name: "image build failed", error: ImageBuildFailure(tag: "t", exitCode: 1, output: "Step 1/2 : RUN false"), kind: .environment),
        Case(name: "firewall not applied", error: SandboxFailure("the firewall's self-test failed"), kind: .environment),
        Case(name: "interrupted before the agent", error: RunLifecycle.Stopped(reason: .interrupted), kind: .interrupted),
        Case(name: "timed out before the agent", error: RunLifecycle.Stopped(reason: .timeout), kind: .outcome),
        Case(name: "model API unreachable", error: RunLifecycle.Stopped(reason: .modelUnreachable), kind: .environment),
        Case(name: "already a PatinaError", error: PatinaError(.environment, "cluster gone"), kind: .environment),
    ]

    @Test(arguments: cases)
    func eachErrorHasItsKind(_ c: Case) {
        let failure = PatinaError(classifying: c.error)
        #expect(failure.kind == c.kind)
        #expect(failure.message == "\(c.error)")
        if !(c.error is PatinaError) { #expect(failure.cause.map { "\($0)" } == "\(c.error)") }
    }

    @Test func unknownErrorsTakeTheKindTheCallerSays() {
        struct Odd: Error {}
        #expect(PatinaError(classifying: Odd()).kind == .outcome)
        #expect(PatinaError(classifying: Odd(), otherwise: .environment).kind == .environment)
    }

    @Test func exitCodesByKind() {
        #expect(PatinaError.Kind.allCases.map(\.exitCode) == [2, 3, 1, 130])
    }

    @Test func aFinishedRunExitsByItsStatus() {
        var record = RunRecordTests.sample()
        let expected: [(RunStatus, Int32?)] = [
            (.succeeded, nil), (.failed, 1), (.checkFailed, 1), (.timedOut, 1), (.budgetExceeded, 1), (.interrupted, 130), (.error, 3),
        ]
        for (status, code) in expected {
            record.status = status
            #expect(PatinaError.kind(of: record)?.exitCode == code, "\(status)")
        }
        record.status = .succeeded
        record.check = CheckResult(command: "make test", exitCode: 1, passed: false, durationS: 1, outputTail: "")
        #expect(PatinaError.kind(of: record) == .outcome)
        record.status = .error
        record.failure = PatinaError(.badInput, "a template of .patina/ does not render")
        #expect(PatinaError.kind(of: record) == .badInput)
    }
}
