import Foundation
import PatinaTestSupport
import Testing

/// A repository Dockerfile that fails to build: no stopped intermediate container is left
/// behind, and the error shows the failing step's own output, not the engine's banner.
@Suite(.serialized, .requiresDocker, .timeLimit(.minutes(5)))
struct ImageBuildFailureEndToEndTests {
    @Test func aFailingRepositoryDockerfileLeavesNoContainerAndNamesTheStep() throws {
        let marker = "boom-\(UUID().uuidString.prefix(8).lowercased())"
        let repo = try TemporaryRepository(files: [
            ".devcontainer/devcontainer.json": #"{ "build": { "dockerfile": "Dockerfile" } }"#,
            ".devcontainer/Dockerfile": "FROM \(TestEnvironment.baseImage)\nRUN echo \(marker) && false\n",
        ])
        let model = try FakeModel(script: [.text("unreachable")])
        let patina = PatinaRunner(repository: repo, baseURL: model.baseURL)
        let output = try patina.yolo("never starts")
        // The environment failed (exit 3), before anything of the run existed.
        #expect(output.status == 3, "\(output.stderr)")
        #expect(output.stderr.split(separator: "\n").last?.hasPrefix("error: the devcontainer's Dockerfile did not build") == true, "\(output.stderr)")
        #expect(try repo.git("branch", "--list", "patina/*").isEmpty, "a branch was left")
        #expect(try repo.git("worktree", "list").split(separator: "\n").count == 1, "a worktree was left")
        #expect(try PatinaRunner.leftoverContainers(repository: repo).isEmpty)
        let said = output.stdout + output.stderr
        #expect(said.contains("RUN echo \(marker) && false") && said.contains(marker), "\(said)")
        #expect(!said.contains("DEPRECATED"), "\(said)")
        #expect(model.requests().isEmpty)
        // No container of the failed step is left (running or stopped).
        let left = try ProcessRunner.check(["docker", "ps", "--all", "--no-trunc", "--format", "{{.ID}} {{.Command}}"])
        #expect(!left.contains(marker), "a stopped intermediate container is left: \(left)")
    }
}
