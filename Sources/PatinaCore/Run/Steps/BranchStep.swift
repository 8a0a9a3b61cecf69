import Foundation
import PatinaGit
import PatinaSandbox

/// Step "branch": `patina/<id>` at the base commit and a worktree outside the repository.
/// What the branch step made: whether this run created the branch (only then may
/// cleanup delete it), what the agent's containers mount at /workspace (the idmapped view
/// of the worktree when patina runs as root, else nil: the worktree itself) and the watch
/// on what changes in the worktree until collection.
struct PreparedBranch: Sendable {
    let created: Bool
    let agentWorktree: URL?
    let watch: WorktreeWatch?
}

extension RunLifecycle {
    /// Creates (or, for a resumed run or a shell, finds) the branch and its worktree and
    /// hands the worktree to the agent. On a failure what it created is removed again.
    func createBranch() throws -> PreparedBranch {
        if let earlier = plan.continuesRun {
            // A resumed run (or a shell) works on its predecessor's branch and worktree: both must
            // still be there, the branch where planning found it.
            guard try plan.repository.branchTip(plan.branch) == plan.baseCommit else {
                throw PlanError("branch \(plan.branch) moved while the run was being planned; try again")
            }
            guard FileManager.default.fileExists(atPath: plan.worktree.appendingPathComponent(".git").path) else {
                throw PlanError("the worktree of run \(earlier) is gone (\(plan.worktree.path)); it cannot be resumed")
            }
            progress.step("continuing run \(earlier) on \(plan.branch) at \(plan.baseCommit.short), worktree \(plan.worktree.path)")
            do {
                return PreparedBranch(created: false, agentWorktree: try giveWorktreeToAgent(), watch: watchWorktree())
            } catch {
                collection.releaseWorktreeView()
                throw error
            }
        }
        // A branch of that name belongs to someone else (an id collision): never touch it.
        if plan.repository.branchExists(plan.branch) {
            throw PlanError("branch \(plan.branch) already exists; try again")
        }
        try plan.repository.createBranch(plan.branch, at: plan.baseCommit)
        do {
            try FileManager.default.createDirectory(at: plan.worktree.deletingLastPathComponent(), withIntermediateDirectories: true)
            let sparse = plan.sparse
            try plan.repository.addWorktree(name: plan.worktreeName, path: plan.worktree, branch: plan.branch, sparse: sparse)
            progress.step("branch \(plan.branch) at \(plan.baseCommit.short), worktree \(plan.worktree.path)"
                + (sparse.isEmpty ? "" : " (sparse: \(sparse.joined(separator: ", ")) and the top level's files)"))
            return PreparedBranch(created: true, agentWorktree: try giveWorktreeToAgent(), watch: watchWorktree())
        } catch {
            cleanUpBranch(PreparedBranch(created: true, agentWorktree: nil, watch: nil))
            throw error
        }
    }

    /// From here until its containers are gone, what changes in the worktree is watched
    /// from outside the sandbox, so collection reads that and nothing else (not for a
    /// shell, whose uncommitted changes stay where they are).
    func watchWorktree() -> WorktreeWatch? {
        guard plan.shell == nil else { return nil }
        let watch = WorktreeWatch(worktree: plan.worktree)
        if watch == nil { steps.note("no watch on the worktree (inotify unavailable): collection reads all of it") }
        return watch
    }

    /// As root, the worktree's files stay root's: the agent's containers mount an idmapped
    /// view of it (RunLayout.worktreeView) through which the agent's uid owns them and what
    /// it creates is root's, so no file changes owner before or after the run. Where the
    /// kernel or the filesystem has no idmapped mounts, every file is handed to the agent's
    /// uid instead (its index stat data refreshed as it goes) and back at collection.
    /// Returns the view, if there is one.
    func giveWorktreeToAgent() throws -> URL? {
        guard getuid() == 0 else { return nil }
        let view = layout.worktreeView
        do {
            let views = view.deletingLastPathComponent()
            // Only root may pass: through a view, root's files are the agent uid's.
            guard mkdir(views.path, 0o700) == 0 || errno == EEXIST, chmod(views.path, 0o700) == 0,
                  mkdir(view.path, 0o700) == 0 else {
                throw IdmappedMount.Failure(step: "creating \(view.path)", errno: errno)
            }
            try IdmappedMount.mount(plan.worktree, at: view, disk: (0, 0), view: (plan.agentUID, plan.agentGID))
            return view
        } catch {
            rmdir(view.path)
            steps.note("no idmapped view of the worktree (\(error)): its files are handed to uid \(plan.agentUID) for the run")
            try plan.repository.handOverWorktree(
                name: plan.worktreeName, worktree: plan.worktree, to: FileOwner(uid: plan.agentUID, gid: plan.agentGID))
            return nil
        }
    }

    /// Only for runs whose agent never started: the branch holds nothing. Only
    /// what this run created is removed.
    func cleanUpBranch(_ branch: PreparedBranch) {
        _ = branch.watch?.finish()
        collection.releaseWorktreeView()
        guard branch.created else { return }
        try? plan.repository.removeWorktree(name: plan.worktreeName, path: plan.worktree)
        if plan.repository.branchExists(plan.branch) { try? plan.repository.deleteBranch(plan.branch) }
    }
}
