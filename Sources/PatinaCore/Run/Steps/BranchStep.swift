import Foundation
import PatinaGit

/// Step "branch": `patina/<id>` at the base commit and a worktree outside the repository.
extension RunLifecycle {
    func createBranch() throws {
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
            return
        }
        // A branch of that name belongs to someone else (an id collision): never touch it.
        if plan.repository.branchExists(plan.branch) {
            throw PlanError("branch \(plan.branch) already exists; try again")
        }
        try plan.repository.createBranch(plan.branch, at: plan.baseCommit)
        branchCreated = true
        try FileManager.default.createDirectory(at: plan.worktree.deletingLastPathComponent(), withIntermediateDirectories: true)
        // As root, the files are created for the agent's uid, their stat data recorded as
        // created: render has nothing to hand over for the worktree.
        let owner = getuid() == 0 ? FileOwner(uid: plan.agentUID, gid: plan.agentGID) : nil
        try plan.repository.addWorktree(name: plan.worktreeName, path: plan.worktree, branch: plan.branch, owner: owner)
        progress.step("branch \(plan.branch) at \(plan.baseCommit.short), worktree \(plan.worktree.path)")
    }

    /// Only for runs whose agent never started: the branch holds nothing. Only
    /// what this run created is removed.
    func cleanUpBranch() {
        guard branchCreated else { return }
        try? plan.repository.removeWorktree(name: plan.worktreeName, path: plan.worktree)
        if plan.repository.branchExists(plan.branch) { try? plan.repository.deleteBranch(plan.branch) }
        branchCreated = false
    }
}
