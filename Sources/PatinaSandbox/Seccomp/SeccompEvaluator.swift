import Foundation

/// Runs a compiled seccomp program (classic BPF over `struct seccomp_data`) for one
/// syscall, the way the kernel would: so what patina checks is what libseccomp
/// compiled, not the rules it was given.
public enum SeccompEvaluator {
    /// `struct seccomp_data`: nr, arch, instruction_pointer, args[6].
    public struct Call: Sendable {
        public var nr: UInt32
        public var arch: UInt32
        public var args: [UInt64] = Array(repeating: 0, count: 6)

        public init(nr: UInt32, arch: UInt32, args: [UInt64] = Array(repeating: 0, count: 6)) {
            self.nr = nr
            self.arch = arch
            self.args = args
        }

        /// The 32-bit word at `offset` of the struct, little-endian halves for the 64-bit fields.
        func word(at offset: UInt32) -> UInt32? {
            switch offset {
            case 0: return nr
            case 4: return arch
            case 8, 12: return 0
            case 16..<64 where offset % 4 == 0:
                let index = Int((offset - 16) / 8)
                let value = index < args.count ? args[index] : 0
                return (offset - 16) % 8 == 0 ? UInt32(truncatingIfNeeded: value) : UInt32(truncatingIfNeeded: value >> 32)
            default: return nil
            }
        }
    }

    public enum Action: Equatable, Sendable {
        case kill, trap, errno(UInt16), trace, log, allow, notify, other(UInt32)

        init(_ value: UInt32) {
            switch value & 0xFFFF_0000 {
            case 0x8000_0000, 0x0000_0000: self = .kill
            case 0x0003_0000: self = .trap
            case 0x0005_0000: self = .errno(UInt16(value & 0xFFFF))
            case 0x7FF0_0000: self = .trace
            case 0x7FFC_0000: self = .log
            case 0x7FFF_0000: self = .allow
            case 0x7FC0_0000: self = .notify
            default: self = .other(value)
            }
        }

        /// The call does not reach the kernel's implementation.
        public var denies: Bool {
            switch self {
            case .kill, .trap, .errno: return true
            default: return false
            }
        }
    }

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// Evaluates `program` (the bytes `seccomp_export_bpf` wrote: 8 per instruction).
    public static func evaluate(_ program: [UInt8], _ call: Call) throws -> Action {
        let count = program.count / 8
        func instruction(_ i: Int) -> (code: UInt16, jt: UInt8, jf: UInt8, k: UInt32) {
            let b = i * 8
            let code = UInt16(program[b]) | UInt16(program[b + 1]) << 8
            let k = UInt32(program[b + 4]) | UInt32(program[b + 5]) << 8 | UInt32(program[b + 6]) << 16 | UInt32(program[b + 7]) << 24
            return (code, program[b + 2], program[b + 3], k)
        }
        var a: UInt32 = 0, x: UInt32 = 0
        var memory = [UInt32](repeating: 0, count: 16)
        var pc = 0
        while pc < count {
            let (code, jt, jf, k) = instruction(pc)
            pc += 1
            switch code & 0x07 {
            case 0x00, 0x01: // LD, LDX
                let value: UInt32
                switch code & 0xE0 {
                case 0x20: // ABS
                    guard code & 0x18 == 0x00, let w = call.word(at: k) else { throw Failure(description: "unsupported load at \(k)") }
                    value = w
                case 0x00: value = k // IMM
                case 0x60: // MEM
                    guard k < 16 else { throw Failure(description: "scratch slot \(k)") }
                    value = memory[Int(k)]
                case 0x80: value = 64 // LEN
                default: throw Failure(description: "unsupported load mode \(code)")
                }
                if code & 0x07 == 0x00 { a = value } else { x = value }
            case 0x02, 0x03: // ST, STX
                guard k < 16 else { throw Failure(description: "scratch slot \(k)") }
                memory[Int(k)] = code & 0x07 == 0x02 ? a : x
            case 0x04: // ALU
                let operand = code & 0x08 != 0 ? x : k
                switch code & 0xF0 {
                case 0x00: a = a &+ operand
                case 0x10: a = a &- operand
                case 0x20: a = a &* operand
                case 0x30: guard operand != 0 else { return .kill }; a /= operand
                case 0x40: a |= operand
                case 0x50: a &= operand
                case 0x60: a = operand >= 32 ? 0 : a << operand
                case 0x70: a = operand >= 32 ? 0 : a >> operand
                case 0x80: a = 0 &- a
                case 0xA0: a ^= operand
                default: throw Failure(description: "unsupported ALU op \(code)")
                }
            case 0x05: // JMP
                let operand = code & 0x08 != 0 ? x : k
                let taken: Bool
                switch code & 0xF0 {
                case 0x00: pc += Int(k); continue // JA
                case 0x10: taken = a == operand
                case 0x20: taken = a > operand
                case 0x30: taken = a >= operand
                case 0x40: taken = a & operand != 0
                default: throw Failure(description: "unsupported jump \(code)")
                }
                pc += Int(taken ? jt : jf)
            case 0x06: // RET
                return Action(code & 0x18 == 0x10 ? a : k)
            case 0x07: // MISC
                if code & 0xF8 == 0x00 { x = a } else { a = x }
            default:
                throw Failure(description: "unsupported instruction \(code)")
            }
        }
        throw Failure(description: "the program ran past its end")
    }
}
