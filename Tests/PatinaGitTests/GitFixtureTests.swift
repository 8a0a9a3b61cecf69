import Foundation
import PatinaTestSupport
import Testing

@Suite("Git test fixtures")
struct GitFixtureTests {
    @Test("a fixture repository has one commit on main")
    func fixtureRepository() throws {
        let fixture = try GitFixture()
        #expect(try fixture.git("rev-list", "--count", "HEAD").trimmingCharacters(in: .whitespacesAndNewlines) == "1")
        #expect(try fixture.git("rev-parse", "--abbrev-ref", "HEAD").hasPrefix("main"))
    }
}
