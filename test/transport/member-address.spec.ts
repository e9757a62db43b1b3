import { MemberAddressError, parseMember, parseMembers } from '../../lib/transport/member-address.js';

describe('member addresses', () => {
  it('parses id=host:port, IPv6 in brackets, host names, and address objects', () => {
    expect(parseMembers(['node1=10.0.0.1:7001', 'node2=[::1]:7002', 'node3=db-3.internal:7003', { id: 'node4', address: 'h:1' }])).toEqual([
      { id: 'node1', host: '10.0.0.1', port: 7001 },
      { id: 'node2', host: '::1', port: 7002 },
      { id: 'node3', host: 'db-3.internal', port: 7003 },
      { id: 'node4', host: 'h', port: 1 },
    ]);
    expect(parseMember({ id: 'x', host: 'h', port: 9 })).toEqual({ id: 'x', host: 'h', port: 9 });
    expect(parseMember('x=[fe80::1%eth0]:65535')).toEqual({ id: 'x', host: 'fe80::1%eth0', port: 65535 });
  });

  it.each([
    ['node1', 'members[0]: expected "id=host:port", got "node1"'],
    ['node1=10.0.0.1', 'members[0]: expected "id=host:port", got "node1=10.0.0.1"'],
    ['=h:1', 'members[0]: expected "id=host:port", got "=h:1"'],
    ['a=h:0', 'got "a=h:0"'],
    ['a=h:65536', 'got "a=h:65536"'],
    ['a=h:7x', 'got "a=h:7x"'],
    ['a=:7001', 'got "a=:7001"'],
    ['a=::1:7001', 'got "a=::1:7001"'],
    ['a=[::1]7001', 'got "a=[::1]7001"'],
    [' a=h:1', 'got " a=h:1"'],
  ])('rejects %j with the entry and the expected format', (entry, message) => {
    expect(() => parseMembers([entry])).toThrow(MemberAddressError);
    expect(() => parseMembers([entry])).toThrow(message);
  });

  it('names the offending index and the object format', () => {
    expect(() => parseMembers(['a=h:1', 'b=h:2', { id: 'c', address: 'nope' }])).toThrow(
      'members[2]: expected { id, address: "host:port" }, got {"id":"c","address":"nope"}',
    );
    expect(() => parseMembers(['a=h:1', 42 as unknown as string])).toThrow('members[1]: expected "id=host:port" or');
  });

  it('rejects duplicate ids', () => {
    expect(() => parseMembers(['a=h:1', 'b=h:2', 'a=h:3'])).toThrow('members[2]: duplicate id "a" (also members[0])');
  });
});
