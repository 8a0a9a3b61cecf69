import Foundation
import PatinaGit

/// Step "branch": `patina/<id>` at the base commit and a worktree outside the repository.
extension RunLifecycle {
    func createBranch() throws {
        // A branch of that name belongs to someone else (an id collision): never touch it.
        if plan.repository.branchExists(plan.branch) {
            throw PlanError("branch \(plan.branch) already exists; try again")
        }
        try plan.repository.createBranch(plan.branch, at: plan.baseCommit)
        branchCreated = true
        try FileManager.default.createDirectory(at: plan.worktree.deletingLastPathComponent(), withIntermediateDirectories: true)
        try plan.repository.addWorktree(name: plan.id, path: plan.worktree, branch: plan.branch)
        progress.step("branch \(plan.branch) at \(plan.baseCommit.short), worktree \(plan.worktree.path)")
    }

    /// Only for runs whose agent never started: the branch holds nothing. Only
    /// what this run created is removed.
    func cleanUpBranch() {
        guard branchCreated else { return }
        try? plan.repository.removeWorktree(name: plan.id, path: plan.worktree)
        if plan.repository.branchExists(plan.branch) { try? plan.repository.deleteBranch(plan.branch) }
        branchCreated = false
    }
}
