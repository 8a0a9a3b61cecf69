import Foundation
import PatinaGit
#if canImport(Glibc)
import Glibc
#endif

/// Which patina home holds a neutral folder (`StorePlacement`), so that `patina prune` can
/// remove the folders of homes that were deleted, and only those.
///
/// The home keeps one small file per store, `<home>/repos/.claims/<folder name>` (its text: the
/// link's path), and the folder keeps a hard link of it, `<folder>/claims/<random>`. The
/// filesystem counts a file's names wherever they are and whatever is mounted: a claim whose
/// count fell to 1 lost its name in the home, so the home (or its `.claims`) was deleted. A home
/// that is on a filesystem not mounted now, seen from another mount namespace, or moved (`mv`)
/// within its filesystem still holds its name, and its folder stays.
extension StorePlacement {
    static func claimsDirectory(ofHome repositories: URL) -> URL { repositories.appendingPathComponent(".claims") }
    static func claimsDirectory(of folder: URL) -> URL { folder.appendingPathComponent("claims") }

    /// Makes sure `folder` holds a claim of the home that `link` lies in. Never fails a run: a
    /// claim that cannot be made leaves the folder unclaimed, which `orphans` never removes.
    static func claim(_ folder: URL, link: URL) {
        let fm = FileManager.default
        let homeClaims = claimsDirectory(ofHome: link.deletingLastPathComponent())
        let homeClaim = homeClaims.appendingPathComponent(folder.lastPathComponent)
        let folderClaims = claimsDirectory(of: folder)
        var home = stat()
        if lstat(homeClaim.path, &home) == 0, (home.st_mode & S_IFMT) == S_IFREG {
            for name in (try? fm.contentsOfDirectory(atPath: folderClaims.path)) ?? [] {
                var info = stat()
                if lstat(folderClaims.appendingPathComponent(name).path, &info) == 0, info.st_dev == home.st_dev, info.st_ino == home.st_ino { return }
            }
        } else {
            do {
                try fm.createDirectory(at: homeClaims, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
                try Data((link.path + "\n").utf8).write(to: homeClaim, options: .atomic)
            } catch { return }
        }
        // The home's file first, then its name in the folder: a folder never holds a claim
        // that was not, when made, also a name in the home.
        try? fm.createDirectory(at: folderClaims, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        _ = Glibc.link(homeClaim.path, folderClaims.appendingPathComponent(randomID()).path)
    }

    public struct Orphan: Sendable {
        /// The neutral folder.
        public var folder: URL
        /// The links its claims named (where its home was).
        public var links: [String]
        /// Claims in this patina's home whose link is gone or points elsewhere: removed with the folder.
        var homeClaims: [URL] = []
    }

    public struct OrphanScan: Sendable {
        public var orphans: [Orphan] = []
        /// Folders that looked orphaned but stay, and why.
        public var kept: [(folder: String, reason: String)] = []
        /// This user's folders without a claim (made by an older patina): never removed.
        public var unclaimed: [String] = []
    }

    /// This user's neutral folders that no patina home holds any more. A folder is an orphan
    /// only when all of these hold:
    /// - it is this user's (its owner is the effective uid) and it carries claims;
    /// - no claim has a name left outside the folder, except a name in `home` (the home this
    ///   patina uses, which it sees) whose link is gone or points at another folder;
    /// - no link its claims name points at it;
    /// - nothing in it is marked in flight (runs, pending runs, shells, views, batches).
    /// A folder being removed is renamed `.pruning-<name>` first; one left so is an orphan too.
    public static func orphans(home: URL, neutralRoot: URL = neutralRoot) -> OrphanScan {
        let fm = FileManager.default
        var scan = OrphanScan()
        // This home's claims that no link of this home points at (judged by the links in the
        // home as it is now, not by the path a claim recorded: a home may have been moved).
        var stale: [[UInt64]: URL] = [:]
        let repositories = home.appendingPathComponent("repos")
        let targets = Set(((try? fm.contentsOfDirectory(atPath: repositories.path)) ?? []).compactMap {
            try? fm.destinationOfSymbolicLink(atPath: repositories.appendingPathComponent($0).path)
        })
        let homeClaims = claimsDirectory(ofHome: repositories)
        for name in (try? fm.contentsOfDirectory(atPath: homeClaims.path)) ?? [] {
            let file = homeClaims.appendingPathComponent(name)
            var info = stat()
            guard lstat(file.path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { continue }
            if !targets.contains(neutralRoot.appendingPathComponent(name).path) { stale[[UInt64(info.st_dev), UInt64(info.st_ino)]] = file }
        }
        let uid = geteuid()
        for name in ((try? fm.contentsOfDirectory(atPath: neutralRoot.path)) ?? []).sorted() {
            let folder = neutralRoot.appendingPathComponent(name)
            var info = stat()
            guard lstat(folder.path, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR, info.st_uid == uid else { continue }
            if name.hasPrefix(".pruning-") {
                scan.orphans.append(Orphan(folder: folder, links: []))
                continue
            }
            guard name.range(of: "^[0-9a-f]{16}$", options: .regularExpression) != nil else { continue }
            let claims = claimsDirectory(of: folder)
            let names = (try? fm.contentsOfDirectory(atPath: claims.path)) ?? []
            var links: [String] = [], homeNames: [URL] = [], held = false
            for claim in names {
                let file = claims.appendingPathComponent(claim)
                var c = stat()
                guard lstat(file.path, &c) == 0, (c.st_mode & S_IFMT) == S_IFREG else { continue }
                let staleName = stale[[UInt64(c.st_dev), UInt64(c.st_ino)]]
                if let staleName { homeNames.append(staleName) }
                if Int(c.st_nlink) - (staleName == nil ? 0 : 1) >= 2 { held = true }
                if let link = try? String(contentsOf: file, encoding: .utf8).trimmingCharacters(in: .newlines) { links.append(link) }
            }
            if names.isEmpty {
                scan.unclaimed.append(folder.path)
                continue
            }
            if held { continue }
            if let link = links.first(where: { (try? fm.destinationOfSymbolicLink(atPath: $0)) == folder.path }) {
                scan.kept.append((folder.path, "its link \(link) still points at it"))
                continue
            }
            guard nothingInFlight(RunStore(root: folder)) else {
                scan.kept.append((folder.path, "runs of it are marked in flight (links: \(links.joined(separator: ", ")))"))
                continue
            }
            scan.orphans.append(Orphan(folder: folder, links: links, homeClaims: homeNames))
        }
        return scan
    }

    /// Removes an orphan found by `orphans`: renamed aside first, so nothing reaches it by its
    /// name meanwhile, and looked at again; then removed with this home's stale claims of it.
    public static func remove(_ orphan: Orphan) throws {
        let fm = FileManager.default
        let name = orphan.folder.lastPathComponent
        var aside = orphan.folder
        if !name.hasPrefix(".pruning-") {
            aside = orphan.folder.deletingLastPathComponent().appendingPathComponent(".pruning-" + name)
            guard rename(orphan.folder.path, aside.path) == 0 else {
                throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: orphan.folder.path,
                                                              NSLocalizedDescriptionKey: "could not rename \(orphan.folder.path): \(String(cString: strerror(errno)))"])
            }
            guard nothingInFlight(RunStore(root: aside)) else {
                _ = rename(aside.path, orphan.folder.path)
                throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: orphan.folder.path,
                                                              NSLocalizedDescriptionKey: "\(orphan.folder.path): a run started in it meanwhile; kept"])
            }
        }
        for claim in orphan.homeClaims { try? fm.removeItem(at: claim) }
        do {
            try fm.removeItem(at: aside)
        } catch {
            // A tree an agent made too deep for a path (see DeepRemoval).
            guard DeepRemoval.remove(aside.path) else { throw error }
        }
    }
}
