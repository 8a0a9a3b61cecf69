import Foundation
import PatinaGit
import PatinaModelProxy
import PatinaSandbox
import PatinaTemplates

/// A failure as the user sees it: what kind it is (which decides the exit code), one line
/// saying what went wrong, and the error it came from. The layers below keep their own
/// error types; `PatinaError(classifying:)` maps them to a kind once, at the edge.
public struct PatinaError: Error, CustomStringConvertible, Sendable {
    /// The kinds of failure, one exit code each (README, `patina --help`).
    public enum Kind: String, Sendable, CaseIterable {
        /// The user asked for something that cannot be (a flag, a file, a plan, a run that
        /// does not exist): nothing was changed. Exit 2.
        case badInput = "bad_input"
        /// What patina needs around the run failed: the container engine, an image build,
        /// the firewall or seccomp set-up, the model API, the cluster. Exit 3.
        case environment
        /// The run (or command) ended without success: the agent failed, the check failed,
        /// the timeout or the budget ended it. Exit 1.
        case outcome
        /// Stopped by Ctrl-C or SIGTERM. Exit 130.
        case interrupted

        public var exitCode: Int32 {
            switch self {
            case .outcome: 1
            case .badInput: 2
            case .environment: 3
            case .interrupted: 130
            }
        }
    }

    public let kind: Kind
    public let message: String
    /// The error this one was made from, when it was made from one.
    public let cause: (any Error)?

    public init(_ kind: Kind, _ message: String, cause: (any Error)? = nil) {
        self.kind = kind
        self.message = message
        self.cause = cause
    }

    public var description: String { message }

    /// `error` as a `PatinaError`: itself when it is one, else its message with the kind its
    /// type (and case) says; `otherwise` for errors of no known kind.
    public init(classifying error: any Error, otherwise: Kind = .outcome) {
        if let error = error as? PatinaError {
            self = error
            return
        }
        self.init(Self.kind(of: error) ?? otherwise, "\(error)", cause: error)
    }

    /// The kind an error of a lower layer is, when its type says.
    static func kind(of error: any Error) -> Kind? {
        switch error {
        case is BadInput, is DurationParser.Invalid, is TemplateError, is JSONCError, is PriceTable.Invalid,
             is IPNetwork.Reason, is ClaudeCodeLocator.Unusable:
            return .badInput
        case is ImageBuildFailure, is CommandFailure, is DockerAPI.Failure, is Canary.Failure, is SandboxFailure,
             is IdmappedMount.Failure, is SocketError, is SeccompEvaluator.Failure, is CocoaError, is LineFileError:
            return .environment
        case let error as DockerError:
            switch error {
            case .missing, .daemonDown, .imageMissing: return .environment
            }
        case let error as FirewallError:
            switch error {
            case .invalidEntry, .unknownPreset, .invalidSetting, .noUpstreamDNS: return .badInput
            }
        case let error as SeccompError:
            switch error {
            case .library, .probeFailed, .nativeArchitectureMissing: return .environment
            default: return .badInput
            }
        case let error as GitError:
            return kind(ofGit: error)
        case let stop as RunLifecycle.Stopped:
            switch stop.reason {
            case .interrupted: return .interrupted
            case .modelUnreachable, .diskLow: return .environment
            case .timeout: return .outcome
            }
        default:
            return nil
        }
    }

    static func kind(ofGit error: GitError) -> Kind {
        switch error {
        case .notARepository, .notOwnedByCurrentUser, .noCommits, .unknownRevision, .notACommit, .invalidName,
             .branchExists, .branchNotFound, .branchMoved, .tagNotFound, .worktreeNotFound, .mergeConflicts,
             .uncommittedChanges, .untrackedFilesInTheWay, .branchCheckedOutElsewhere, .patchDoesNotApply,
             .applyConflicts, .filesInTheWay, .noWorkingTree:
            return .badInput
        case .tagExists, .worktreePathExists, .fileSystem, .libgit2:
            return .environment
        case .unsafeSandboxGitDirectory, .unsafeWorktree, .agentHeadUnreadable, .collectionLimit:
            return .outcome
        }
    }

    /// How a finished run ends the command: nil for a run that succeeded (and whose check,
    /// if any, passed). A run that stopped with an error of no known kind failed in its
    /// environment (the sandbox, the engine, the model API).
    public static func kind(of record: RunRecord) -> Kind? {
        switch record.status {
        case .succeeded: return record.check?.passed == false ? .outcome : nil
        case .interrupted: return .interrupted
        case .error: return record.failure?.kind ?? .environment
        case .failed, .checkFailed, .timedOut, .budgetExceeded, .running: return .outcome
        }
    }
}
