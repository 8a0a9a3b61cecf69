import CGit2
import Foundation

/// What `Repository.apply` does where the run and the working tree changed the same lines.
public enum ApplyConflicts: Sendable {
    /// Refuse, naming the files (`applyConflicts`); nothing is written.
    case refuse
    /// Apply the rest, and write those files with conflict markers (as `git apply --3way`).
    case markers
}

extension Repository {
    /// The three-way merge of one file the changes modify: `base`'s version, the working
    /// tree's (`ours`), `head`'s (`theirs`). A patch can apply where the two sides touched
    /// the same place (both appended to a file: the context still matches), so conflicts
    /// are found by merging, as `git merge` would, not by whether the patch fits.
    struct FileMerge {
        var path: String
        var clean: Bool
        /// The merged text, with conflict markers when not clean.
        var merged: Data
    }

    /// Three-way merges of the text files `base`..`head` modifies (same path on both sides)
    /// that exist in the working tree; binary files and other kinds of change are left to
    /// the patch.
    func mergeModifiedFiles(from base: ObjectID, to head: ObjectID, workdir: URL) throws(GitError) -> [FileMerge] {
        let changes = try diffStat(from: base, to: head).filter { $0.status == .modified && !$0.isBinary }
        guard !changes.isEmpty else { return [] }
        let baseTree = try tree(of: commit(base)), headTree = try tree(of: commit(head))
        var merges: [FileMerge] = []
        for change in changes {
            let file = workdir.appendingPathComponent(change.path)
            guard !FileSystem.isDirectory(file.path), let ours = try? Data(contentsOf: file),
                  let ancestor = try blob(at: change.path, in: baseTree), let theirs = try blob(at: change.path, in: headTree)
            else { continue }
            merges.append(try mergeFile(path: change.path, ancestor: ancestor, ours: ours, theirs: theirs))
        }
        return merges
    }

    private func blob(at path: String, in tree: TreeHandle) throws(GitError) -> Data? {
        var entry: OpaquePointer?
        guard git_tree_entry_bypath(&entry, tree.pointer, path) == 0, let entry else { return nil }
        defer { git_tree_entry_free(entry) }
        guard git_tree_entry_type(entry) == GIT_OBJECT_BLOB else { return nil }
        var id = git_tree_entry_id(entry).pointee
        let blob = try Handle<BlobKind>.make("reading the blob of \(path)", parent: handle) {
            git_blob_lookup(&$0, pointer, &id)
        }
        return Data(UnsafeRawBufferPointer(start: git_blob_rawcontent(blob.pointer), count: Int(git_blob_rawsize(blob.pointer))))
    }

    private func mergeFile(path: String, ancestor: Data, ours: Data, theirs: Data) throws(GitError) -> FileMerge {
        var options = git_merge_file_options()
        try check(git_merge_file_options_init(&options, UInt32(GIT_MERGE_FILE_OPTIONS_VERSION)), "preparing the file merge")
        var result = git_merge_file_result()
        let code: Int32 = ancestor.withUnsafeBytes { a in
            ours.withUnsafeBytes { o in
                theirs.withUnsafeBytes { t in
                    path.withCString { name in
                        func input(_ bytes: UnsafeRawBufferPointer) -> git_merge_file_input {
                            var value = git_merge_file_input()
                            git_merge_file_input_init(&value, UInt32(GIT_MERGE_FILE_INPUT_VERSION))
                            value.ptr = bytes.baseAddress?.assumingMemoryBound(to: CChar.self)
                            value.size = bytes.count
                            value.path = name
                            return value
                        }
                        var base = input(a), mine = input(o), other = input(t)
                        var labels = options
                        return "working tree".withCString { oursLabel in
                            "run".withCString { theirsLabel in
                                labels.our_label = oursLabel
                                labels.their_label = theirsLabel
                                return git_merge_file(&result, &base, &mine, &other, &labels)
                            }
                        }
                    }
                }
            }
        }
        defer { git_merge_file_result_free(&result) }
        try check(code, "merging \(path)")
        let merged = result.ptr.map { Data(bytes: $0, count: result.len) } ?? Data()
        return FileMerge(path: path, clean: result.automergeable != 0, merged: merged)
    }
}
