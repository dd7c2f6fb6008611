"""Local stand-ins for hosted APIs: real HTTP servers on loopback that follow
each service's documented protocol, with faults that tests switch on."""
