# bash completion for ovpn-cli (ovpn-dco). Source it, or install it as
# /usr/share/bash-completion/completions/ovpn-cli.
#
# Completes the command names (the list is checked against the CLI's own table by
# test/cli.test.ts), the interfaces of this network namespace after a command that takes one
# (their control sockets, readable by root), commands after an interface (the seed syntax),
# a few fixed values (modes, ciphers, slots), and file names for the rest.

_ovpn_cli_commands="new_iface del_iface iface_get show new_peer new_multi_peer listen connect set_peer del_peer get_peer new_key get_key del_key swap_keys route_add route_del route_get listen_mcast genkey help"

_ovpn_cli_interfaces() {
  local dir ino
  ino=$(stat -L -c %i /proc/self/ns/net 2>/dev/null) || return
  dir=${OVPN_DCO_RUN_DIR:-/run/ovpn-dco}/netns-$ino
  compgen -G "$dir/*.sock" 2>/dev/null | sed -e 's#.*/##' -e 's#\.sock$##'
}

_ovpn_cli() {
  local cur=${COMP_WORDS[COMP_CWORD]} words=() w i=0
  # The words before the cursor, without options (--json may come anywhere).
  for ((w = 1; w < COMP_CWORD; w++)); do
    [[ ${COMP_WORDS[w]} == -* ]] || words+=("${COMP_WORDS[w]}")
  done
  COMPREPLY=()
  if [[ $cur == -* ]]; then
    mapfile -t COMPREPLY < <(compgen -W "--json --help --version" -- "$cur")
    return
  fi
  local first=${words[0]:-} n=${#words[@]} cmd
  if ((n == 0)); then
    mapfile -t COMPREPLY < <(compgen -W "$_ovpn_cli_commands $(_ovpn_cli_interfaces)" -- "$cur")
    return
  fi
  # Which command, and how many of its own arguments are already there.
  if [[ " $_ovpn_cli_commands " == *" ${first//-/_} "* ]]; then
    cmd=${first//-/_}
    i=$((n - 2))
    if ((n == 1)); then
      case $cmd in
        help) mapfile -t COMPREPLY < <(compgen -W "$_ovpn_cli_commands" -- "$cur") ;;
        genkey) mapfile -t COMPREPLY < <(compgen -f -- "$cur") ;;
        *) mapfile -t COMPREPLY < <(compgen -W "$(_ovpn_cli_interfaces)" -- "$cur") ;;
      esac
      return
    fi
  else
    if ((n == 1)); then
      mapfile -t COMPREPLY < <(compgen -W "${_ovpn_cli_commands/help /}" -- "$cur")
      return
    fi
    cmd=${words[1]//-/_}
    i=$((n - 2))
  fi
  case $cmd:$i in
    new_iface:0) mapfile -t COMPREPLY < <(compgen -W "P2P MP" -- "$cur") ;;
    new_key:1) mapfile -t COMPREPLY < <(compgen -W "aes chachapoly none 1 2" -- "$cur") ;;
    new_key:3) mapfile -t COMPREPLY < <(compgen -W "aes chachapoly none" -- "$cur") ;;
    get_key:1 | del_key:1) mapfile -t COMPREPLY < <(compgen -W "1 2" -- "$cur") ;;
    *) mapfile -t COMPREPLY < <(compgen -f -- "$cur") ;;
  esac
}

complete -o filenames -F _ovpn_cli ovpn-cli
