import CGit2
import Foundation

extension Repository {
    /// Applies the changes from `base` to `head` to this working tree, as
    /// `git diff base head | git apply` would (`git apply --index` when `staged`: the
    /// index gets them too, and the files they touch must match the index). Nothing is
    /// committed; HEAD and every ref stay where they are. Binary files are applied from
    /// their full binary diff. Returns the paths changed (both paths of a rename), sorted.
    ///
    /// All or nothing: files the changes would create but which already exist in the
    /// working tree refuse it first (`filesInTheWay`); then every file is patched in
    /// memory (a dry run) and any that does not apply refuses it (`patchDoesNotApply`,
    /// naming each such file); only then are the files written, through libgit2's safe
    /// checkout, which checks every path before writing any. libgit2 runs no filter
    /// driver or hook.
    ///
    /// Files both the changes and the working tree changed are merged three ways first:
    /// where they conflict, `.refuse` throws `applyConflicts` naming them (nothing
    /// written), `.markers` applies the rest and writes those files with conflict markers
    /// (never staged), returned in `conflicted`.
    public func apply(from base: ObjectID, to head: ObjectID, staged: Bool) throws(GitError) -> [String] {
        try apply(from: base, to: head, staged: staged, conflicts: .refuse).paths
    }

    /// `apply(from:to:staged:)`, choosing what happens to conflicts; also returns the files
    /// written with conflict markers.
    public func apply(
        from base: ObjectID, to head: ObjectID, staged: Bool, conflicts: ApplyConflicts
    ) throws(GitError) -> (paths: [String], conflicted: [String]) {
        guard let workdir = workingDirectory else { throw .noWorkingTree(operation: "apply changes") }
        let diff = try applicableDiff(from: base, to: head)
        let deltas = (0..<git_diff_num_deltas(diff.pointer)).compactMap { position in
            git_diff_get_delta(diff.pointer, position).map { AppliedDelta($0.pointee) }
        }
        guard !deltas.isEmpty else { return ([], []) }
        let index = try repositoryIndex()

        let inTheWay = pathsInTheWay(deltas, workdir: workdir, index: staged ? index : nil)
        guard inTheWay.isEmpty else { throw .filesInTheWay(paths: inTheWay) }

        let conflicting = try mergeModifiedFiles(from: base, to: head, workdir: workdir).filter { !$0.clean }
        if !conflicting.isEmpty && conflicts == .refuse { throw .applyConflicts(paths: conflicting.map(\.path).sorted()) }
        let skipped = Set(conflicting.map(\.path))

        let location = staged ? GIT_APPLY_LOCATION_BOTH : GIT_APPLY_LOCATION_WORKDIR
        // The dry run; after a failing file, again from the next one, to name them all.
        var failing = [String]()
        var reason: String?
        var start = 0
        while start < deltas.count {
            let tracker = ApplyTracker(skipBefore: start, skipping: Set(deltas.indices.filter { skipped.contains(deltas[$0].newPath) }))
            do throws(GitError) {
                try runApply(diff, location: location, checkOnly: true, tracker: tracker)
                break
            } catch {
                guard tracker.current >= start else { throw error }
                failing.append(contentsOf: deltas[tracker.current].paths)
                if reason == nil, case .libgit2(_, _, let message) = error { reason = message }
                start = tracker.current + 1
            }
        }
        guard failing.isEmpty else {
            throw .patchDoesNotApply(paths: Array(Set(failing)).sorted(), reason: reason ?? "patch failed")
        }

        let skipping = Set(deltas.indices.filter { skipped.contains(deltas[$0].newPath) })
        if skipping.count < deltas.count {
            try runApply(diff, location: location, checkOnly: false, tracker: ApplyTracker(skipBefore: 0, skipping: skipping))
        }
        for file in conflicting {
            do {
                try file.merged.write(to: workdir.appendingPathComponent(file.path))
            } catch {
                throw .fileSystem("writing the conflict markers into \(file.path): \(error.localizedDescription)")
            }
        }
        return (Array(Set(deltas.flatMap(\.paths))).sorted(), conflicting.map(\.path).sorted())
    }

    /// The diff from `base`'s tree to `head`'s with full binary data, renames detected.
    private func applicableDiff(from base: ObjectID, to head: ObjectID) throws(GitError) -> DiffHandle {
        let oldTree = try tree(of: commit(base))
        let newTree = try tree(of: commit(head))
        var options = git_diff_options()
        try check(git_diff_options_init(&options, UInt32(GIT_DIFF_OPTIONS_VERSION)), "preparing the diff options")
        options.flags = GIT_DIFF_SHOW_BINARY.rawValue
        let diff = try DiffHandle.make("diffing \(base.short)..\(head.short)", parent: handle) {
            git_diff_tree_to_tree(&$0, pointer, oldTree.pointer, newTree.pointer, &options)
        }
        var find = git_diff_find_options()
        try check(git_diff_find_options_init(&find, UInt32(GIT_DIFF_FIND_OPTIONS_VERSION)), "preparing rename detection")
        find.flags = GIT_DIFF_FIND_RENAMES.rawValue
        try check(git_diff_find_similar(diff.pointer, &find), "detecting renames")
        return diff
    }

    private func runApply(
        _ diff: DiffHandle, location: git_apply_location_t, checkOnly: Bool, tracker: ApplyTracker
    ) throws(GitError) {
        var options = git_apply_options()
        try check(git_apply_options_init(&options, UInt32(GIT_APPLY_OPTIONS_VERSION)), "preparing the apply options")
        options.flags = checkOnly ? GIT_APPLY_CHECK.rawValue : 0
        options.delta_cb = applyDeltaCallback
        options.payload = Unmanaged.passUnretained(tracker).toOpaque()
        let code = withExtendedLifetime(tracker) { git_apply(pointer, diff.pointer, location, &options) }
        try check(code, checkOnly ? "checking the changes against the working tree" : "applying the changes")
    }

    /// New paths of the diff that something in the working tree (or, for `index`, an
    /// index entry) already occupies, and files standing where a new path needs a
    /// directory; paths the diff itself removes are not in the way.
    private func pathsInTheWay(_ deltas: [AppliedDelta], workdir: URL, index: IndexHandle?) -> [String] {
        let removed = Set(deltas.compactMap { $0.status == GIT_DELTA_DELETED || $0.status == GIT_DELTA_RENAMED ? $0.oldPath : nil })
        var inTheWay = Set<String>()
        for delta in deltas where delta.status == GIT_DELTA_ADDED || delta.status == GIT_DELTA_RENAMED
            || delta.status == GIT_DELTA_COPIED {
            let path = delta.newPath
            if !removed.contains(path) {
                if FileSystem.exists(workdir.appendingPathComponent(path).path) { inTheWay.insert(path) }
                if let index, git_index_get_bypath(index.pointer, path, 0) != nil { inTheWay.insert(path) }
            }
            var parent = ""
            for component in path.split(separator: "/").dropLast() {
                parent = parent.isEmpty ? String(component) : parent + "/" + component
                let full = workdir.appendingPathComponent(parent).path
                if !removed.contains(parent), FileSystem.exists(full), !FileSystem.isDirectory(full) {
                    inTheWay.insert(parent)
                }
            }
        }
        return inTheWay.sorted()
    }

    /// The repository's index, reread if it changed on disk since this handle loaded it
    /// (libgit2 writes its in-memory index back after applying).
    func repositoryIndex() throws(GitError) -> IndexHandle {
        let index = try IndexHandle.make("opening the index", parent: handle) {
            git_repository_index(&$0, pointer)
        }
        try check(git_index_read(index.pointer, 0), "rereading the index")
        return index
    }
}

/// One file of the diff being applied.
private struct AppliedDelta {
    var status: git_delta_t
    var oldPath: String
    var newPath: String

    init(_ delta: git_diff_delta) {
        status = delta.status
        newPath = delta.new_file.path.map { String(cString: $0) } ?? ""
        oldPath = delta.old_file.path.map { String(cString: $0) } ?? newPath
    }

    var paths: [String] { oldPath == newPath ? [newPath] : [oldPath, newPath] }
}

/// Follows `git_apply` through the diff: the delta it is working on (`current`, an index
/// into the diff; -1 before the first) and which deltas to skip.
private final class ApplyTracker {
    let skipBefore: Int
    /// Deltas never applied (files written with conflict markers instead).
    let skipping: Set<Int>
    var seen = 0
    var current = -1

    init(skipBefore: Int, skipping: Set<Int> = []) {
        self.skipBefore = skipBefore
        self.skipping = skipping
    }
}

/// 0: apply this delta; 1: skip it.
private let applyDeltaCallback: git_apply_delta_cb = { _, payload in
    guard let payload else { return 0 }
    let tracker = Unmanaged<ApplyTracker>.fromOpaque(payload).takeUnretainedValue()
    let position = tracker.seen
    tracker.seen += 1
    guard position >= tracker.skipBefore, !tracker.skipping.contains(position) else { return 1 }
    tracker.current = position
    return 0
}
